"""The activation functions a learner spec may name, the one table of them: the specs check
names against it and the banks (and the reference) look the functions up in it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "tanh": torch.tanh, "gelu": functional.gelu, "silu": functional.silu,
}
