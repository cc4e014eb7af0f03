r"""Meta-SGD (Li et al. 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning").

The inner rate is a learned tensor with one entry per parameter (per node here), applied
element-wise, :math:`\phi = \theta - \alpha \circ \nabla_\theta L_{support}(\theta)`, and
:math:`\alpha` is meta-trained with :math:`\theta` by the second-order query gradient. Every
entry of :math:`\alpha` starts at ``inner_lr``; all steps share it. Adapting with ``K`` steps
beyond the ``S`` trained ones takes :math:`\alpha S / K` at the steps past ``S``
(:func:`~.base.trained_step`); the run loop keeps :math:`\alpha` in ``[train.min_rate,
train.max_rate]`` (:meth:`~.base.Algorithm.clamp_rates_`).
"""

from __future__ import annotations

import torch
from torch import nn

from ...learners.banks.bank_set import BankSet
from .base import Algorithm, InnerLoopSettings, share_of, trained_step


class MetaSGD(Algorithm):
    """Meta-SGD: a learned rate per parameter."""

    name = "metasgd"

    def build_rates(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        self.trained_steps = max(settings.inner_steps, 1)
        self.rates = nn.ModuleList(
            nn.ParameterDict({} if bank.closed_form else
                             {name: nn.Parameter(torch.full_like(theta, settings.inner_lr))
                              for name, theta in bank.theta.items()})
            for bank in banks)

    def rate(self, index: int, name: str, step: int, steps: int) -> torch.Tensor:
        return share_of(self.rates[index][name], trained_step(step, steps, self.trained_steps)[1])

    def learned_rates(self) -> list[nn.Parameter]:
        return list(self.rates.parameters())
