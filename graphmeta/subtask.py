"""`Subtask`: the spec of one node of a task graph."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from .errors import GraphError
from .learners import LearnerSpec, learner_from, learner_to_dict, learner_type

KINDS = ("regression", "classification")


def _check_dim(name: str, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise GraphError(f"subtask {name!r}: {key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Subtask:
    """One node of a :class:`~graphmeta.TaskGraph`.

    A regression subtask predicts ``out_dim`` real values; a classification subtask predicts
    one of ``num_classes`` classes. Its input is its own ``in_dim`` features (0 for a node
    driven only by its parents; for a GNN learner, the node-feature width of its input
    graphs) concatenated with the values of its parents: a regression parent contributes
    its ``out_dim`` values, a classification parent a one-hot vector of ``num_classes``.

    ``attrs`` holds free-form metadata, e.g. the ``state_names`` of a Bayesian-network variable.
    """

    name: str
    in_dim: int = 0
    kind: str = "regression"
    out_dim: int = 1
    num_classes: int | None = None
    learner: LearnerSpec = field(default_factory=lambda: learner_from("mlp"))
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise GraphError(f"subtask names must be non-empty strings, got {self.name!r}")
        object.__setattr__(self, "learner", learner_from(self.learner))
        object.__setattr__(self, "in_dim", _check_dim(self.name, "in_dim", self.in_dim, 0))
        if self.kind not in KINDS:
            raise GraphError(f"subtask {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "classification":
            if self.num_classes is None:
                raise GraphError(f"subtask {self.name!r}: a classification subtask needs num_classes")
            object.__setattr__(self, "num_classes", _check_dim(self.name, "num_classes", self.num_classes, 2))
        else:
            if self.num_classes is not None:
                raise GraphError(
                    f"subtask {self.name!r}: a regression subtask takes out_dim, not num_classes "
                    f"(use kind='classification' for a {self.num_classes}-class subtask)"
                )
            object.__setattr__(self, "out_dim", _check_dim(self.name, "out_dim", self.out_dim, 1))
        self.learner.check_subtask(self)

    @property
    def width(self) -> int:
        """How many input columns this node's value gives each child."""
        return self.num_classes if self.kind == "classification" else self.out_dim

    @property
    def takes_graphs(self) -> bool:
        """Whether this node's own features arrive as graphs (a GNN learner), not as columns."""
        return learner_type(self.learner).takes_graphs

    def to_dict(self) -> dict[str, Any]:
        """A YAML/JSON-friendly mapping; :meth:`from_dict` inverts it."""
        spec: dict[str, Any] = {"in_dim": self.in_dim, "kind": self.kind}
        if self.kind == "classification":
            spec["num_classes"] = self.num_classes
        else:
            spec["out_dim"] = self.out_dim
        spec["learner"] = learner_to_dict(self.learner)
        if self.attrs:
            spec["attrs"] = dict(self.attrs)
        return spec
