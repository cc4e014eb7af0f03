"""`Subtask`: the spec of one node of a task graph."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from ..errors import GraphError, SpecError
from ..learners import LearnerSpec, learner_from, learner_to_dict, learner_type
from ..validation import BeforeValidator, Ge, MinLen, OneOf, checked

KINDS = ("regression", "classification")

#: A learner argument: a spec, or what :func:`~graphmeta.learners.learner_from` turns into one
#: (a registered name such as ``"gnn"``, or a ``{"type": ..., ...}`` mapping).
Learner = Annotated[LearnerSpec, BeforeValidator(learner_from)]


def subtask_label(arguments: Mapping[str, Any]) -> str:
    """How messages name the subtask that a call with ``arguments`` builds: ``subtask 'a'``."""
    return f"subtask {str(arguments.get('name'))!r}"


@checked(where=subtask_label, error=SpecError)
@dataclass(frozen=True)
class Subtask:
    """One node of a :class:`~graphmeta.TaskGraph`.

    A regression subtask predicts ``out_dim`` real values; a classification subtask predicts
    one of ``num_classes`` classes. Its input is its own ``in_dim`` features (0 for a node
    driven only by its parents; for a GNN learner, the node-feature width of its input
    graphs) concatenated with the values of its parents: a regression parent contributes
    its ``out_dim`` values, a classification parent a one-hot vector of ``num_classes``.

    A *latent* subtask (``observed=False``) is a node like any other whose value is never
    labelled: its learner predicts it, the prediction fills its value columns for its children,
    and it learns only through their losses (see :class:`~graphmeta.learners.banks.bank_set.BankSet`).
    It must be a regression subtask (a scalar or a small embedding, ``out_dim``) with an observed
    descendant (:meth:`TaskGraph.validate <graphmeta.TaskGraph.validate>`).

    ``attrs`` holds free-form metadata, e.g. the ``state_names`` of a Bayesian-network
    variable; its keys may not be field names, so a flat form of the spec (a networkx node's
    attributes) stays unambiguous. A wrong argument is a :class:`~graphmeta.errors.SpecError`
    naming the subtask and the key.
    """

    name: Annotated[str, MinLen(1)]
    in_dim: Annotated[int, Ge(0)] = 0
    kind: Annotated[str, OneOf(KINDS)] = "regression"
    out_dim: Annotated[int, Ge(1)] = 1
    num_classes: Annotated[int, Ge(2)] | None = None
    learner: Learner = field(default_factory=lambda: learner_from("mlp"))
    attrs: Mapping[str, Any] = field(default_factory=dict)
    observed: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "attrs", dict(self.attrs))
        for key in self.attrs:
            if key in self.__dataclass_fields__:
                raise SpecError(f"subtask {self.name!r}: attribute {key!r} clashes with a subtask field; "
                                "rename or drop it")
        if self.kind == "classification" and self.num_classes is None:
            raise GraphError(f"subtask {self.name!r}: a classification subtask needs num_classes")
        if self.kind == "regression" and self.num_classes is not None:
            raise GraphError(
                f"subtask {self.name!r}: a regression subtask takes out_dim, not num_classes "
                f"(use kind='classification' for a {self.num_classes}-class subtask)"
            )
        if not self.observed and self.kind != "regression":
            raise GraphError(f"subtask {self.name!r}: a latent subtask (observed=False) must be a regression "
                             "subtask (out_dim values, a scalar or a small embedding); latent classes are not "
                             "supported: observe it, or make it kind='regression'")
        self.learner.check_subtask(self)

    @property
    def width(self) -> int:
        """How many input columns this node's value gives each child."""
        # __post_init__ makes num_classes set exactly for a classification subtask
        return self.out_dim if self.num_classes is None else self.num_classes

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
        if not self.observed:
            spec["observed"] = False
        return spec
