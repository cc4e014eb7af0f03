r"""Reptile (Nichol et al. 2018, "On First-Order Meta-Learning Algorithms").

The inner steps are plain SGD on the support loss; theta is not trained by the query loss
but moved towards the adapted weights: its meta-gradient is
:math:`\frac{1}{T}\sum_t (\theta - \phi_t)`, the gradient of
:math:`\frac{1}{2T}\sum_t \lVert \theta - \phi_t \rVert^2` with :math:`\phi_t` held constant.
With message passing on, its parameters learn from the query loss of the corrected weights
(computed from constant adapted weights, so theta still gets Reptile's gradient alone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ...errors import ConfigError
from ...learners.banks.bank import Weights
from ...learners.banks.bank_set import BankSet
from .base import ALGORITHMS, Adaptation, Algorithm, InnerLoopSettings


@ALGORITHMS.register
class Reptile(Algorithm):
    """Reptile: theta follows the adapted weights."""

    name = "reptile"
    second_order = False
    query_trains_theta = False

    def __init__(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        if any(bank.closed_form for bank in banks):
            raise ConfigError("reptile pulls theta towards the adapted weights, but closed-form learners (Table, "
                              "Linear) adapt in closed form and learn their prior from the query loss: use maml, "
                              "fomaml, metasgd or anil")
        super().__init__(banks, settings)

    def outer_loss(self, query_loss: torch.Tensor, adaptation: Adaptation,
                   query_loss_of: Callable[[Sequence[Weights]], torch.Tensor]) -> torch.Tensor:
        num_tasks = next(iter(adaptation.plain[0].values())).shape[0]
        pull = sum(0.5 * (theta[name] - plain[name].detach()).pow(2).sum() / num_tasks
                   for theta, plain in zip(adaptation.initial, adaptation.plain) for name in theta)
        return pull + query_loss if adaptation.corrected else pull
