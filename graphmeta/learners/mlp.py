"""The MLP learner type: a multilayer perceptron on the node's features and parents' values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ..errors import SpecError
from ..validation import Ge, OneOf, checked
from .activations import ACTIVATIONS
from .registry import LearnerSpec, LearnerType, register


@checked(error=SpecError)
@dataclass(frozen=True)
class MLP(LearnerSpec):
    """A multilayer perceptron ``in -> hidden[0] -> ... -> hidden[-1] -> out``.

    ``hidden=()`` is a linear (or, for classification, multinomial logistic) model.
    """

    hidden: tuple[Annotated[int, Ge(1)], ...] = (40, 40)
    activation: Annotated[str, OneOf(tuple(ACTIVATIONS))] = "relu"


register(LearnerType("mlp", MLP, bank=".banks.mlp:MLPBank", marker="o", label="MLP"))
