r"""Meta-SGD (Li et al. 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning").

The inner rate is a learned tensor with one entry per parameter (per node here), applied
element-wise, :math:`\phi = \theta - \alpha \circ \nabla_\theta L_{support}(\theta)`, and
:math:`\alpha` is meta-trained with :math:`\theta` by the second-order query gradient. Every
entry of :math:`\alpha` starts at ``inner_lr``; all steps share it.
"""

from __future__ import annotations

import torch
from torch import nn

from ...learners.bank_set import BankSet
from .base import Algorithm, InnerLoopSettings


class MetaSGD(Algorithm):
    """Meta-SGD: a learned rate per parameter."""

    name = "metasgd"

    def build_rates(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        self.rates = nn.ModuleList(
            nn.ParameterDict({} if bank.closed_form else
                             {name: nn.Parameter(torch.full_like(theta, settings.inner_lr))
                              for name, theta in bank.theta.items()})
            for bank in banks)

    def rate(self, index: int, name: str, step: int) -> torch.Tensor:
        return self.rates[index][name]
