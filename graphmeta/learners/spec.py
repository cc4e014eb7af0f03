"""Learner specs: small, frozen descriptions of the learner a subtask uses.

A spec says *what* a node learner is (layer widths, activation, prior); the banks in
``graphmeta.learners`` turn every node sharing a spec into one stacked, batched module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Union

from ..errors import GraphError, check_keys

ACTIVATIONS = ("relu", "tanh", "gelu", "silu")


@dataclass(frozen=True)
class MLP:
    """A multilayer perceptron ``in -> hidden[0] -> ... -> hidden[-1] -> out``.

    ``hidden=()`` is a linear (or, for classification, multinomial logistic) model.
    """

    hidden: tuple[int, ...] = (40, 40)
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        for width in self.hidden:
            if not isinstance(width, int) or isinstance(width, bool) or width <= 0:
                raise GraphError(f"MLP hidden widths must be positive integers, got {self.hidden!r}")
        if self.activation not in ACTIVATIONS:
            raise GraphError(f"unknown MLP activation {self.activation!r}; choose one of {ACTIVATIONS}")

    @property
    def type(self) -> str:
        return "mlp"


@dataclass(frozen=True)
class GNN:
    """A graph network for subtasks whose inputs are graphs.

    ``layers`` rounds of GCN-style propagation ``H <- act(D^-1/2 (A + I) D^-1/2 H W)`` with
    ``hidden`` channels, a mean-pool readout, then a linear head on the pooled embedding
    concatenated with the parents' values.
    """

    hidden: int = 32
    layers: int = 2
    activation: str = "relu"

    def __post_init__(self) -> None:
        for key in ("hidden", "layers"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise GraphError(f"GNN {key} must be a positive integer, got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise GraphError(f"unknown GNN activation {self.activation!r}; choose one of {ACTIVATIONS}")

    @property
    def type(self) -> str:
        return "gnn"


@dataclass(frozen=True)
class Table:
    r"""A conditional probability table of a classification subtask over its parents' joint classes.

    Each joint configuration :math:`u` of the parents has a column of pseudo-counts
    :math:`\beta(u, \cdot)`, a Dirichlet prior; the node predicts
    :math:`P(v \mid u) = \beta(u, v) / \beta(u)` and adapts in closed form, by the conjugate
    update :math:`\beta \leftarrow \beta + n` with :math:`n(u, v)` the support counts: the exact
    Bayesian posterior predictive, whatever the support size. Meta-training learns the prior
    :math:`\beta` (its direction and its strength, per column). Before meta-training every
    column holds ``prior_strength`` pseudo-counts spread evenly over the classes.

    The subtask must be a classification subtask without own features (``in_dim=0``) whose
    parents are all classification subtasks.
    """

    prior_strength: float = 1.0

    def __post_init__(self) -> None:
        if (not isinstance(self.prior_strength, (int, float)) or isinstance(self.prior_strength, bool)
                or not self.prior_strength > 0):
            raise GraphError(f"Table prior_strength must be a positive number, got {self.prior_strength!r}")

    @property
    def type(self) -> str:
        return "table"


LearnerSpec = Union[MLP, GNN, Table]
LEARNERS: dict[str, type] = {"mlp": MLP, "gnn": GNN, "table": Table}


def learner_from(value: Any) -> LearnerSpec:
    """Turn ``"mlp"``, ``"gnn"``, a spec object or a ``{"type": ..., ...}`` mapping into a spec."""
    if isinstance(value, (MLP, GNN, Table)):
        return value
    if isinstance(value, str):
        if value not in LEARNERS:
            raise GraphError(f"unknown learner {value!r}; choose one of {sorted(LEARNERS)}")
        return LEARNERS[value]()
    if isinstance(value, dict):
        options = dict(value)
        kind = options.pop("type", "mlp")
        if kind not in LEARNERS:
            raise GraphError(f"unknown learner {kind!r}; choose one of {sorted(LEARNERS)}")
        spec_class = LEARNERS[kind]
        check_keys(options, spec_class.__dataclass_fields__, f"{kind} learner spec", GraphError)
        return spec_class(**options)
    raise GraphError(f"unknown learner {value!r}; pass 'mlp', 'gnn', 'table' or a spec such as graphmeta.MLP(...)")


def learner_to_dict(spec: LearnerSpec) -> dict[str, Any]:
    """The inverse of :func:`learner_from` for mappings (YAML/JSON friendly)."""
    fields = asdict(spec)
    if "hidden" in fields and isinstance(fields["hidden"], tuple):
        fields["hidden"] = list(fields["hidden"])
    return {"type": spec.type, **fields}
