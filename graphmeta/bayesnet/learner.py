r"""`BayesNetMetaLearner`: fit a Bayesian network of known structure for a new site from a few
records, after meta-learning from the records of many related sites; the result is a pgmpy model.

pgmpy's estimators see only the new site's rows. Here every variable is a tabular learner
(:mod:`.tabular`) whose logits :math:`z(u)` over its parent configurations are meta-learned
across the related sites' tables and adapted to the new site's rows with Meta-SGD, optionally
followed by message passing of the adapted parameters along the network.

Why Meta-SGD on a table approximates the Bayes-optimal estimate. For one column
:math:`u` with counts :math:`n(u, v)` among the :math:`K` support rows and a Dirichlet prior
:math:`\mathrm{Dir}(\alpha\, \theta^*(\cdot \mid u))`, the posterior predictive is

.. math::
    P(v \mid u) = \frac{\alpha\, \theta^*(v \mid u) + n(u, v)}{\alpha + n(u)},
    \qquad \log P(v \mid u) - \log \theta^*(v \mid u) \approx
    \frac{n(u, v) - n(u)\, \theta^*(v \mid u)}{\alpha\, \theta^*(v \mid u)}   \quad (n(u) \ll \alpha).

A gradient step on the mean support cross-entropy from :math:`z_0(u) = \log \theta^*(\cdot \mid u)`
moves the logits by :math:`\frac{a}{K} (n(u, v) - n(u)\, \mathrm{softmax}(z_0(u))_v)`: the same
update when the per-parameter rate is :math:`a(u, v) = K / (\alpha\, \theta^*(v \mid u))`. Meta-SGD
learns a rate per table entry, and further steps let the softmax saturate the update for
large counts. The match is first order only: the posterior moves a logit by
:math:`\log(1 + n(u, v) / (\alpha\, \theta^*(v \mid u)))`, concave in the count, which no
fixed rate reproduces for rare states (one observation of a state with
:math:`\alpha \theta^* = 0.01` should move its logit by 4.6, not 100). On networks with many
rare states (child, alarm) this leaves graphmeta 0.05 to 0.15 nats per row below the exact
conjugate update, where pooled empirical Bayes (which has the conjugate form built in) is
at most 0.02 below (see ``benchmarks/results/bayesnet_fewshot.md``).

The rates depend on the support size :math:`K` (a table entry moves by :math:`a\, n(u) / K`),
so a learner is meta-trained for the support size it will adapt with: ``shots`` in
:meth:`~BayesNetMetaLearner.meta_fit` (adapting to a very different size warns). The
meta-initialisation starts at the pooled, smoothed log-frequencies of the related sites.

When sites differ through a shared factor (one hospital's population shifts every CPD
together), a node's own rows say little, but all nodes' adapted parameters together say a
lot: message passing of the parameter updates along the network (``message_passing=True``,
the default) lets every variable use that evidence; on the ``latent`` families of child and
alarm it closes about 80% of the gap between pooled empirical Bayes and the posterior under
the true model at 5 and 20 support rows.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import Split
from ..errors import ConfigError, DataError, check_keys
from ..layout import GraphLayout
from ..model import GraphMetaLearner
from ..train.checkpoint import load_checkpoint, save_checkpoint
from ..train.trainer import Trainer
from .baselines import smoothed_frequencies
from .structure import NetworkStructure
from .tabular import probe_codes, split_from_codes, tabular_graph
from .tasks import TableTasks

#: GraphMetaLearner arguments and their defaults.
MODEL_DEFAULTS: dict[str, Any] = {
    "algorithm": "metasgd", "inner_steps": 3, "inner_lr": 1.0, "message_passing": True,
    "message_channels": 64, "message_rounds": 2,
}
#: meta_fit options (Trainer arguments and the episode sizes) and their defaults.
FIT_DEFAULTS: dict[str, Any] = {
    "shots": 5, "query_shots": 100, "meta_batch_size": 16, "outer_lr": 0.02, "grad_clip": 10.0,
    "val_every": 50, "early_stopping_patience": 6, "val_fraction": 0.2, "seed": 0, "progress": True,
    "run_dir": None,
}
#: Upper bound on meta-training steps when ``steps`` is not given; early stopping usually ends sooner.
MAX_STEPS = 2000
CHECKPOINT_KEYS = ("structure", "config", "shots", "model")


class BayesNetMetaLearner:
    """Meta-learn the CPDs of a discrete Bayesian network with a known DAG across related sites.

    Args:
        structure: a pgmpy ``DiscreteBayesianNetwork`` (CPD values are ignored; only the DAG,
            the variables and their state names are used) or a bundled network's name.
        state_names: ``{variable: [state, ...]}`` for a structure without CPDs.
        **config: :class:`~graphmeta.GraphMetaLearner` arguments (see :data:`MODEL_DEFAULTS`).

    Example::

        learner = BayesNetMetaLearner(structure)
        learner.meta_fit(site_tables, shots=20)      # DataFrames of related sites
        model = learner.adapt(new_site)               # a pgmpy DiscreteBayesianNetwork
        VariableElimination(model).query(["LVFAILURE"], evidence={"HYPOVOLEMIA": "TRUE"})
    """

    def __init__(self, structure: Any, state_names: Mapping[str, Sequence[Any]] | None = None,
                 **config: Any) -> None:
        check_keys(config, MODEL_DEFAULTS, "BayesNetMetaLearner arguments")
        self.structure = (structure if isinstance(structure, NetworkStructure)
                          else NetworkStructure.from_pgmpy(structure, state_names))
        self.config = {**MODEL_DEFAULTS, **config}
        self.graph = tabular_graph(self.structure)
        self.layout = GraphLayout(self.graph)
        self.model = GraphMetaLearner(self.graph, **self.config)
        self.shots: int | None = None  # the support size meta-fitted for
        self._probe = probe_codes(self.structure)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"BayesNetMetaLearner({self.graph!r}, {options})"

    # ------------------------------------------------------------------ verbs
    def meta_fit(self, tasks: Sequence[pd.DataFrame], val_tasks: Sequence[pd.DataFrame] | None = None,
                 steps: int | None = None, **options: Any) -> dict[str, Any]:
        """Meta-train on ``tasks``, one DataFrame per related network (site); returns the
        training summary. Starts afresh each call.

        ``val_tasks`` pick the stopping step; without them the last ``val_fraction`` of
        ``tasks`` is held out. ``steps`` bounds the meta-training steps (default: early stopping
        on the validation loss, at most :data:`MAX_STEPS`). ``options``: ``shots`` (the support
        size to prepare for: the number of rows you will adapt with), ``query_shots``,
        ``meta_batch_size``, ``outer_lr``, ``grad_clip``, ``val_every``,
        ``early_stopping_patience``, ``val_fraction``, ``seed``, ``progress`` and ``run_dir``
        (keep the run's metrics and checkpoints there; default: a temporary folder).
        A row with missing values (NaN) still teaches every variable whose value and parents'
        values it has.
        """
        check_keys(options, FIT_DEFAULTS, "meta_fit options")
        options = {**FIT_DEFAULTS, **options}
        train, val = self._split_tables(tasks, val_tasks, options["val_fraction"])
        episodes = TableTasks(self.structure, self.graph, {"train": train, "val": val})
        torch.manual_seed(options["seed"])
        self.model = GraphMetaLearner(self.graph, **self.config)
        self.shots = options["shots"]
        # start at the pooled (smoothed) frequencies of the related sites: meta-training then
        # mostly learns how to adapt, not what the typical site looks like
        self._initialise_tables(smoothed_frequencies(self.structure, self.structure.counts(train).sum(0)))
        train_options = {
            "steps": MAX_STEPS if steps is None else steps, "shots": options["shots"],
            "query_shots": options["query_shots"], "meta_batch_size": options["meta_batch_size"],
            "outer_lr": options["outer_lr"], "grad_clip": options["grad_clip"], "val_every": options["val_every"],
            "val_tasks": max(len(val), 64), "early_stopping_patience": options["early_stopping_patience"],
            "seed": options["seed"], "progress": options["progress"],
            "checkpoint_every": MAX_STEPS, "log_every": options["val_every"],
        }
        with tempfile.TemporaryDirectory(prefix="graphmeta-bayesnet-") as scratch:
            # a run kept in the user's run_dir gets a fresh timestamped name, a scratch run a fixed one
            name = None if options["run_dir"] else "meta-fit"
            trainer = Trainer(self.model, episodes, run_dir=str(options["run_dir"] or scratch), name=name,
                              **train_options)
            summary = trainer.fit()
        self.model.eval()
        return summary

    def adapt(self, support: pd.DataFrame) -> Any:
        """A pgmpy ``DiscreteBayesianNetwork`` fitted to the new site's ``support`` rows: one
        ``TabularCPD`` per variable, states and parents in the structure's order."""
        if not isinstance(support, pd.DataFrame):
            raise DataError(f"support must be a pandas DataFrame, got {type(support).__name__}")
        tables = self._adapted_tables(self.structure.encode([support], what="the support table"), "the support table")
        return self.structure.to_network(self.structure.table.unpack(tables[0]))

    def cpd_tables(self, supports: Sequence[pd.DataFrame]) -> np.ndarray:
        """The adapted CPDs of several sites at once, ``[T, columns, width]`` in the layout of
        ``structure.table`` (each column a distribution over its variable's states)."""
        return self._adapted_tables(self.structure.encode(list(supports), what="support table"), "support table")

    # ----------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write the structure, the configuration and the meta-learned state; the file loads
        with ``torch.load(weights_only=True)``."""
        return save_checkpoint({"structure": self.structure.to_dict(), "config": dict(self.config),
                                "shots": self.shots, "model": self.model.state_dict()}, path)

    @classmethod
    def load(cls, path: str | Path) -> BayesNetMetaLearner:
        """A learner saved with :meth:`save`."""
        state = load_checkpoint(path, required=CHECKPOINT_KEYS)
        learner = cls(NetworkStructure.from_dict(state["structure"]), **state["config"])
        learner.model.load_state_dict(state["model"])
        learner.shots = state["shots"]
        learner.model.eval()
        return learner

    # ---------------------------------------------------------------- helpers
    def _split(self, codes: np.ndarray) -> Split:
        parameter = next(self.model.parameters())
        return split_from_codes(self.structure, self.layout, codes, parameter.dtype).to(parameter.device)

    def _adapted_tables(self, codes: np.ndarray, what: str) -> np.ndarray:
        """Adapt to every support set of ``codes [T, R, N]`` at once, then read each variable's
        CPD off one batched prediction on the probe rows (one row per parent configuration)."""
        rows = (codes >= 0).any(-1).sum(-1)
        if (rows == 0).any():
            label = what if len(codes) == 1 else f"{what} {int(np.argmin(rows))}"
            raise DataError(f"{label} has no observed value: give at least one row")
        if self.shots is not None and not self.shots / 2 <= np.median(rows) <= self.shots * 2:
            warnings.warn(f"the learner was meta-fitted for {self.shots} support rows but adapts to "
                          f"{int(np.median(rows))}: its learned step sizes are tuned to the support size, so "
                          f"meta_fit(..., shots={int(np.median(rows))}) will fit these sites better", stacklevel=3)
        adapted = self.model.adapt(self._split(codes))
        probe = self._split(np.broadcast_to(self._probe, (len(codes), *self._probe.shape)))
        inputs = {name: probe.features[..., self.layout.feature_slices[name]] for name in self.graph.names
                  if self.graph.subtask(name).in_dim}
        observed = {name: torch.from_numpy(self._probe[:, n].copy()).expand(len(codes), -1)
                    for n, name in enumerate(self.graph.names)}
        return self._pack(adapted.predict(inputs, observed))

    def _pack(self, probabilities: Mapping[str, torch.Tensor]) -> np.ndarray:
        """``[T, columns, width]`` from the probe predictions ``{variable: [T, columns, card]}``:
        variable ``n``'s columns are its own block of probe rows."""
        table = self.structure.table
        out = np.zeros((next(iter(probabilities.values())).shape[0], table.columns, table.width))
        for n, name in enumerate(self.graph.names):
            block = slice(table.offsets[n], table.offsets[n] + table.configs[n])
            values = probabilities[name][:, block].double().cpu().numpy()
            out[:, block, : values.shape[-1]] = values / values.sum(-1, keepdims=True)
        return out

    def _split_tables(self, tasks: Sequence[pd.DataFrame], val_tasks: Sequence[pd.DataFrame] | None,
                      fraction: float) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(tasks, pd.DataFrame) or not len(tasks):
            raise DataError("meta_fit needs a list of DataFrames, one per related network (site)")
        codes = self.structure.encode(list(tasks), what="task table")
        if val_tasks is not None:
            if isinstance(val_tasks, pd.DataFrame) or not len(val_tasks):
                raise DataError("val_tasks must be a non-empty list of DataFrames")
            return codes, self.structure.encode(list(val_tasks), what="validation table")
        if not 0 < fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {fraction!r}")
        if len(codes) < 2:
            raise DataError("meta_fit needs at least 2 task tables to hold one out for validation (or val_tasks)")
        held_out = min(len(codes) - 1, max(1, round(fraction * len(codes))))
        return codes[:-held_out], codes[-held_out:]

    def _initialise_tables(self, tables: np.ndarray) -> None:
        """Set the meta-initialisation so that every variable's CPD is ``tables [columns, width]``:
        the joint-configuration weights of child variables and the biases of roots hold the log
        tables; the per-parent weights start at 0."""
        table = self.structure.table
        with np.errstate(divide="ignore"):
            log_tables = np.log(tables)
        index = {name: n for n, name in enumerate(self.graph.names)}
        with torch.no_grad():
            for bank in self.model.banks:
                weight, bias = bank.theta[0], bank.theta[-1]
                weight.zero_()
                bias.zero_()
                for row, name in enumerate(bank.names):
                    n = index[name]
                    block = torch.as_tensor(log_tables[table.offsets[n]: table.offsets[n] + table.configs[n],
                                                       : table.cardinality[n]], dtype=weight.dtype)
                    if self.graph.subtask(name).in_dim:
                        weight[row, : block.shape[0], : block.shape[1]] = block
                    else:
                        bias[row, : block.shape[1]] = block[0]
