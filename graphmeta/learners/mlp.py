"""The MLP learner type: a multilayer perceptron on the node's features and parents' values."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GraphError
from .registry import LearnerSpec, LearnerType, register

ACTIVATIONS = ("relu", "tanh", "gelu", "silu")


@dataclass(frozen=True)
class MLP(LearnerSpec):
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


register(LearnerType("mlp", MLP, bank="graphmeta.learners.mlp_bank:MLPBank", marker="o", label="MLP"))
