"""The Table learner type: a conditional probability table adapted by the conjugate update."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from ..errors import GraphError, SpecError
from ..validation import Gt, checked
from .registry import LearnerSpec, LearnerType, register


@checked(error=SpecError)
@dataclass(frozen=True)
class Table(LearnerSpec):
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

    prior_strength: Annotated[float, Gt(0)] = 1.0

    def check_subtask(self, subtask: Any) -> None:
        if subtask.kind != "classification" or subtask.in_dim:
            raise GraphError(f"subtask {subtask.name!r}: a Table learner is a CPD over its parents' classes; it "
                             f"needs kind='classification' and in_dim=0 (got kind={subtask.kind!r}, "
                             f"in_dim={subtask.in_dim})")

    def check_parent(self, child: str, parent: Any) -> None:
        if parent.kind != "classification":
            raise GraphError(f"subtask {child!r} has a Table learner, a CPD over its parents' classes, but its "
                             f"parent {parent.name!r} is a regression subtask; use an MLP learner for {child!r}")


register(LearnerType("table", Table, bank=".banks.table:TableBank", marker="D", label="Table"))
