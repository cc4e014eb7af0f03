r"""`BayesNetMetaLearner`: fit a Bayesian network of known structure for a new site from a few
records, after meta-learning from the records of many related sites; the result is a pgmpy model.

pgmpy's estimators see only the new site's rows. Here every variable is a Table learner
(:mod:`.tabular`): Dirichlet pseudo-counts :math:`\beta(u, \cdot)` for each configuration
:math:`u` of its parents, adapted to the new site's support rows by the conjugate update,

.. math::
    P(v \mid u) = \frac{\beta(u, v) + n(u, v)}{\beta(u) + n(u)},

the exact posterior predictive under the prior :math:`\mathrm{Dir}(\beta(u, \cdot))`, whatever
the number of rows. Meta-training learns that prior from the related sites: each column's
mean and its strength :math:`\beta(u)`, by the query log-likelihood of held-out rows after
adaptation. It starts at pooled empirical Bayes, :math:`\beta = c\, \hat\theta` with
:math:`\hat\theta` the pooled, smoothed frequencies of the training sites and one
concentration :math:`c` chosen on the validation sites. When sites are Dirichlet draws around
a common CPD (the ``dirichlet`` families) the Bayes-optimal estimate has exactly this form,
so graphmeta's estimate approaches it as the prior is learned.

When sites differ through a shared factor (one hospital's population shifts every CPD
together), a variable's own rows say little, but all variables' updates together say a lot:
message passing of the updates along the network (``message_passing=True``, the default)
reads every variable's support counts and corrects its *prior* with that evidence (the
``latent`` families), :math:`\beta \to \beta e^{c}`, before the counts are added:

.. math::
    P(v \mid u) = \frac{\beta(u, v) e^{c(u, v)} + n(u, v)}{\sum_{v'} \beta(u, v') e^{c(u, v')} + n(u)},

still the exact posterior of a Dirichlet prior (see :mod:`graphmeta.adapt.message_passing`). So
more rows never leave a column behind its own data: as :math:`n(u)` grows the estimate goes
to the column's frequencies, as pgmpy's estimators do, and the other variables' evidence
weighs only as the pull of a prior of :math:`\sum_v \beta e^{c}` pseudo-counts.

How strongly to trust the other variables depends on how many rows a site gives, so
:meth:`~BayesNetMetaLearner.meta_fit` prepares for a range of support sizes, by default
:data:`DEFAULT_SHOTS` (1 to 200 rows): every episode draws its own size log-uniformly from the
range and message passing sees each variable's counts and support size. ``shots=K`` specialises
a fit to one size (adapting far outside the sizes fitted for warns). Measured results:
``benchmarks/results/bayesnet_fewshot.md``.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ..data import Split
from ..errors import CheckpointError, ConfigError, DataError, GraphError
from ..learners.banks.bank_set import bank_shapes
from ..learners.banks.table import TableBank
from ..model import GraphMetaLearner
from ..taskgraph import ColumnLayout, TaskGraph
from ..train.checkpoint import load_checkpoint, save_checkpoint
from ..train.episode_sampler import Family, Shots
from ..train.trainer import Trainer
from ..validation import Gt, Lt, NonNegativeFloat, NonNegativeInt, PositiveInt, checked
from .baselines import PooledEmpiricalBayes
from .structure import NetworkStructure
from .tabular import probe_codes, split_from_codes, tabular_graph
from .tasks import TableTasks, split_tables

#: How every variable adapts: Table learners adapt in closed form, in one step.
ADAPTATION: dict[str, Any] = {"algorithm": "maml", "inner_steps": 1}
#: Upper bound on meta-training steps when ``steps`` is not given; early stopping usually ends sooner.
MAX_STEPS = 2000
#: The outer rate decays exponentially to this fraction of ``outer_lr`` over the meta-training steps.
FINAL_LR_RATIO = 0.05
#: The support sizes a meta-fit prepares for by default: from 1 to 200 rows.
DEFAULT_SHOTS = (1, 200)
#: How many support sizes, spread evenly on a log scale over the range, choose pooled empirical Bayes' strength.
PRIOR_STRENGTH_SIZES = 8
#: What every network learner's checkpoint holds besides its own keys (:func:`save_network_learner`).
CHECKPOINT_KEYS = ("config", "shots", "model")


class NetworkMetaLearner:
    """What the network learners (:class:`BayesNetMetaLearner`, :class:`~.gaussian_learner.GaussianNetMetaLearner`)
    share: one ``meta_fit`` (:func:`meta_fit_method`, made for each with its own defaults) around two steps
    of their own, reading the sites' tables into episodes (:meth:`_episodes`) and starting the prior of
    the fresh model (:meth:`_start_prior`)."""

    graph: TaskGraph
    config: dict[str, Any]  # the GraphMetaLearner options of the learner's model
    model: GraphMetaLearner
    shots: tuple[int, int] | None  # the range of support sizes meta-fitted for
    #: The prefix of the temporary folder a meta-fit without ``run_dir`` runs in.
    run_prefix: ClassVar[str]

    def _episodes(self, tasks: Sequence[pd.DataFrame], val_tasks: Sequence[pd.DataFrame] | None,
                  val_fraction: float, seed: int) -> tuple[Family, int]:
        """The episodes of the training and validation sites (the last ``val_fraction`` of ``tasks``
        without ``val_tasks``, :func:`~.tasks.split_tables`) and the number of validation sites. A
        table that cannot be read raises here, before ``meta_fit`` replaces the model."""
        raise NotImplementedError

    def _start_prior(self, episodes: Family) -> None:
        """Start the prior of the fresh model (``self.shots`` set) before meta-training; by default
        the :class:`~graphmeta.train.Trainer`'s own start."""


def meta_fit_method(owner: str, doc: str, *, shots: Shots, outer_lr: float,
                    early_stopping_patience: int | None, max_steps: int = MAX_STEPS) -> Callable[..., dict[str, Any]]:
    """``owner``'s ``meta_fit`` with the docstring ``doc``: the one implementation of every
    :class:`NetworkMetaLearner`'s, its signature the schema of its keywords (:func:`~graphmeta.validation.checked`),
    with ``owner``'s defaults for ``shots``, ``outer_lr``, ``early_stopping_patience`` and ``max_steps`` and the
    others shared. It reads the sites (``_episodes``), seeds torch with ``seed`` and builds a fresh
    model, starts its prior (``_start_prior``), then meta-trains it with a
    :class:`~graphmeta.train.Trainer`: at most ``steps`` steps (``max_steps`` without), the
    outer rate decaying exponentially from ``outer_lr`` to :data:`FINAL_LR_RATIO` times it, and
    validation on at least 64 episodes of the validation sites."""
    default_shots, default_outer_lr, default_patience = shots, outer_lr, early_stopping_patience

    def meta_fit(self: NetworkMetaLearner, tasks: Sequence[pd.DataFrame],
                 val_tasks: Sequence[pd.DataFrame] | None = None, steps: NonNegativeInt | None = None, *,
                 shots: Shots = default_shots, query_shots: PositiveInt = 100, meta_batch_size: PositiveInt = 16,
                 outer_lr: NonNegativeFloat = default_outer_lr, grad_clip: NonNegativeFloat | None = 10.0,
                 val_every: PositiveInt = 50, early_stopping_patience: PositiveInt | None = default_patience,
                 val_fraction: Annotated[float, Gt(0), Lt(1)] = 0.2, seed: NonNegativeInt = 0,
                 progress: bool = True, run_dir: str | Path | None = None) -> dict[str, Any]:
        episodes, val_count = self._episodes(tasks, val_tasks, val_fraction, seed)
        torch.manual_seed(seed)
        self.model = GraphMetaLearner(self.graph, **ADAPTATION, **self.config)
        self.shots = (shots, shots) if isinstance(shots, int) else shots
        self._start_prior(episodes)
        train_options: dict[str, Any] = {
            "steps": max_steps if steps is None else steps, "shots": shots, "query_shots": query_shots,
            "meta_batch_size": meta_batch_size, "outer_lr": outer_lr, "grad_clip": grad_clip,
            "val_every": val_every, "val_tasks": max(val_count, 64), "early_stopping_patience": early_stopping_patience,
            "seed": seed, "progress": progress, "checkpoint_every": max_steps, "log_every": val_every,
            "schedule": "exponential", "final_lr_ratio": FINAL_LR_RATIO,
        }
        with tempfile.TemporaryDirectory(prefix=self.run_prefix) as scratch:
            # a run kept in the user's run_dir gets a fresh timestamped name, a scratch run a fixed one
            name = None if run_dir else "meta-fit"
            trainer = Trainer(self.model, episodes, run_dir=str(run_dir or scratch), name=name, **train_options)
            summary = trainer.fit()
        self.model.eval()
        return summary

    meta_fit.__qualname__ = f"{owner}.meta_fit"  # what checked's messages name
    meta_fit.__doc__ = doc
    return checked(meta_fit)


class BayesNetMetaLearner(NetworkMetaLearner):
    """Meta-learn the CPDs of a discrete Bayesian network with a known DAG across related sites.

    Args:
        structure: a pgmpy ``DiscreteBayesianNetwork`` (CPD values are ignored; only the DAG,
            the variables and their state names are used) or a bundled network's name.
        state_names: ``{variable: [state, ...]}`` for a structure without CPDs.
        message_passing, message_channels, message_rounds: the
            :class:`~graphmeta.GraphMetaLearner` arguments of the same names.

    Example::

        learner = BayesNetMetaLearner(structure)
        learner.meta_fit(site_tables)                 # DataFrames of related sites; for 1 to 200 rows
        model = learner.adapt(new_site)               # a pgmpy DiscreteBayesianNetwork
        VariableElimination(model).query(["LVFAILURE"], evidence={"HYPOVOLEMIA": "TRUE"})
    """

    run_prefix = "graphmeta-bayesnet-"

    @checked
    def __init__(self, structure: Any, state_names: Mapping[str, Sequence[Any]] | None = None, *,
                 message_passing: bool = True, message_channels: PositiveInt = 64,
                 message_rounds: NonNegativeInt = 2) -> None:
        self.structure = (structure if isinstance(structure, NetworkStructure)
                          else NetworkStructure.from_pgmpy(structure, state_names))
        self.config: dict[str, Any] = {"message_passing": message_passing, "message_channels": message_channels,
                                       "message_rounds": message_rounds}
        self.graph = tabular_graph(self.structure)
        self.layout = ColumnLayout(self.graph)
        self.model = GraphMetaLearner(self.graph, **ADAPTATION, **self.config)
        self.shots: tuple[int, int] | None = None  # the range of support sizes meta-fitted for
        self._probe = probe_codes(self.structure)

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"BayesNetMetaLearner({self.graph!r}, {options})"

    # ------------------------------------------------------------------ verbs
    meta_fit = meta_fit_method(
        "BayesNetMetaLearner", shots=DEFAULT_SHOTS, outer_lr=0.02, early_stopping_patience=20,
        doc="""Meta-train on ``tasks``, one DataFrame per related network (site); returns the
        training summary. Starts afresh each call.

        ``val_tasks`` pick the stopping step; without them the last ``val_fraction`` of
        ``tasks`` is held out. ``steps`` bounds the meta-training steps (default: early stopping
        on the validation loss, at most :data:`MAX_STEPS`); the outer rate decays exponentially
        from ``outer_lr`` to :data:`FINAL_LR_RATIO` times it over them, so the prior and the
        message passing settle instead of wandering at the step size. Early stopping is patient
        (20 validations, 1,000 steps at the default ``val_every``): the validation loss of a fit
        for a range of support sizes plateaus for hundreds of steps before the decaying rate lets
        it improve again (on asia's latent family a patience of 6 stopped at 1,150 steps and
        closed 84% / 78% of the gap to the Bayes limit at K = 5 / 20, running on closed 92% / 88%),
        and the weights kept are those of the best validation either way.

        ``shots`` are the support sizes to prepare for (the numbers of rows you will adapt
        with): a range ``(low, high)``, by default 1 to 200 rows, or one count to specialise for
        it. Each episode's support takes at most half of its table's rows. The prior starts at
        pooled empirical Bayes with its strength chosen for :data:`PRIOR_STRENGTH_SIZES` sizes
        spread over the range (at most half a validation table's rows). ``query_shots``,
        ``meta_batch_size``, ``outer_lr``, ``grad_clip``, ``val_every``,
        ``early_stopping_patience``, ``seed`` and ``progress`` are the
        :class:`~graphmeta.train.Trainer` arguments of the same names; ``run_dir`` keeps the
        run's metrics and checkpoints (default: a temporary folder).
        A row with missing values (NaN) still teaches every variable whose value and parents'
        values it has.
        """)

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
        return save_network_learner(self, path, structure=self.structure.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> BayesNetMetaLearner:
        """A learner saved with :meth:`save`."""
        def build(state: Mapping[str, Any]) -> BayesNetMetaLearner:
            learner = cls(NetworkStructure.from_dict(state["structure"]), **state["config"])
            saved, expected = bank_shapes(state["model"]), bank_shapes(learner.model.state_dict())
            if len(saved) != len(expected):
                raise CheckpointError(
                    f"{path} holds a BayesNetMetaLearner of an older layout: its variables' tables in "
                    f"{len(saved)} bank(s) {saved}, where this graphmeta version groups them by table size into "
                    f"{len(expected)} banks {expected}; meta-fit the learner again with this version")
            return learner

        return load_network_learner(cls, path, ("structure",), build)

    # ---------------------------------------------------------------- helpers
    def _episodes(self, tasks: Sequence[pd.DataFrame], val_tasks: Sequence[pd.DataFrame] | None,
                  val_fraction: float, seed: int) -> tuple[TableTasks, int]:
        """The sites' encoded tables as :class:`~.tasks.TableTasks` (``seed`` is the Trainer's alone)."""
        train, val = self._split_tables(tasks, val_tasks, val_fraction)
        return TableTasks(self.structure, self.graph, {"train": train, "val": val}), len(val)

    def _start_prior(self, episodes: Family) -> None:
        """Pooled empirical Bayes (:class:`~.baselines.PooledEmpiricalBayes`) of the training tables, its
        strength chosen on the validation tables for :data:`PRIOR_STRENGTH_SIZES` support sizes spread
        over the range fitted for (at most half a validation table's rows)."""
        assert isinstance(episodes, TableTasks) and self.shots is not None  # as _episodes and meta_fit made them
        train, val = episodes.tables["train"], episodes.tables["val"]
        sizes = np.geomspace(*self.shots, PRIOR_STRENGTH_SIZES).round().astype(int)
        pooled = PooledEmpiricalBayes.fit(self.structure, train, val,
                                          np.unique(np.minimum(sizes, val.shape[1] // 2)).tolist())
        self._initialise_prior(pooled.concentration * pooled.frequencies)

    def _split(self, codes: np.ndarray) -> Split:
        parameter = next(self.model.parameters())
        return split_from_codes(self.structure, self.layout, codes, parameter.dtype).to(parameter.device)

    def _adapted_tables(self, codes: np.ndarray, what: str) -> np.ndarray:
        """Adapt to every support set of ``codes [T, R, N]`` at once, then read each variable's
        CPD off one batched prediction on the probe rows (one row per parent configuration)."""
        if self.shots is None:
            warnings.warn("this BayesNetMetaLearner has not been meta-fitted: its CPDs are the conjugate posterior "
                          "under the untrained prior (prior_strength pseudo-counts per column, no message passing "
                          "learned); call meta_fit(tasks) first, or load a fitted one", UserWarning, stacklevel=3)
        rows = (codes >= 0).any(-1).sum(-1)
        if (rows == 0).any():
            label = what if len(codes) == 1 else f"{what} {int(np.argmin(rows))}"
            raise DataError(f"{label} has no observed value: give at least one row")
        if (self.shots is not None and self.model.message_passing is not None
                and not self.shots[0] / 2 <= np.median(rows) <= self.shots[1] * 2):
            fitted = self.shots[0] if self.shots[0] == self.shots[1] else "{} to {}".format(*self.shots)
            size = int(np.median(rows))
            warnings.warn(f"the learner was meta-fitted for {fitted} support rows but adapts to {size}: its "
                          f"message passing is tuned to the sizes it was fitted for, so meta_fit(..., shots="
                          f"{(min(self.shots[0], size), max(self.shots[1], size))}) will fit these sites better",
                          stacklevel=3)
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
        """The codes of the training and validation tables (:func:`~.tasks.split_tables`)."""
        train, val = split_tables(list(tasks), None if val_tasks is None else list(val_tasks), fraction)
        if val_tasks is None:  # encoded together, so an error numbers the tables as given
            codes = self.structure.encode(list(tasks), what="task table")
            return codes[:len(train)], codes[len(train):]
        return self.structure.encode(train, what="task table"), self.structure.encode(val, what="validation table")

    def _initialise_prior(self, pseudo_counts: np.ndarray) -> None:
        """Set every variable's prior to ``pseudo_counts [columns, width]`` (the layout of
        ``structure.table``): its Table rows hold their logarithms."""
        table = self.structure.table
        position = {name: n for n, name in enumerate(self.structure.names)}
        with torch.no_grad():
            for bank in self.model.banks:
                assert isinstance(bank, TableBank)  # tabular_graph gives every variable a Table learner
                log_counts = bank.theta["log_counts"]
                for row, name in enumerate(bank.names):
                    n = position[name]
                    columns = slice(table.offsets[n], table.offsets[n] + table.configs[n])
                    parents = [position[p] for p in self.graph.parents(name)]
                    rows = torch.as_tensor(bank.table_rows(name, self._probe[columns][:, parents]))
                    classes = table.cardinality[n]
                    log_counts[row, rows, :classes] = torch.as_tensor(np.log(pseudo_counts[columns, :classes]),
                                                                       dtype=log_counts.dtype)


def save_network_learner(learner: Any, path: str | Path, **own: Any) -> Path:
    """Write a network learner (:class:`BayesNetMetaLearner`, :class:`~.gaussian_learner.GaussianNetMetaLearner`):
    its configuration, the support sizes it was fitted for, its model's state and ``own`` (what
    rebuilds it: tensors and primitive containers); the file loads with ``torch.load(weights_only=True)``."""
    return save_checkpoint({"config": dict(learner.config), "shots": learner.shots,
                            "model": learner.model.state_dict(), **own}, path)


def load_network_learner(cls: type, path: str | Path, own: tuple[str, ...],
                         build: Callable[[Mapping[str, Any]], Any]) -> Any:
    """The ``cls`` learner saved at ``path`` by :func:`save_network_learner` with the keys ``own``:
    ``build(state)`` rebuilds it unfitted, then its model's state and shots are restored. A file that
    is missing, corrupt or holds something else is a :class:`CheckpointError` naming it."""
    state = load_checkpoint(path, required=CHECKPOINT_KEYS + own)
    try:
        learner = build(state)
        learner.model.load_state_dict(state["model"])
    except (ConfigError, GraphError, DataError, RuntimeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} does not hold a {cls.__name__} of this graphmeta version: {error}") from None
    shots = state["shots"]  # one count in checkpoints of a specialised fit written before ranges
    learner.shots = None if shots is None else (shots, shots) if isinstance(shots, int) else tuple(shots)
    learner.model.eval()
    return learner

