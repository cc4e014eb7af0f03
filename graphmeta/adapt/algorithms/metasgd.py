r"""Meta-SGD (Li et al. 2017, "Meta-SGD: Learning to Learn Quickly for Few-Shot Learning").

The inner rate is a learned tensor with one entry per parameter (per node here), applied
element-wise, :math:`\phi = \theta - \alpha \circ \nabla_\theta L_{support}(\theta)`, and
:math:`\alpha` is meta-trained with :math:`\theta` by the second-order query gradient. Every
entry of :math:`\alpha` starts at ``inner_lr``, as :math:`\alpha = inner\_lr \cdot u` with the
parameter :math:`u` (``rate_scales``) at 1 (:mod:`.base`); all steps share it. Adapting with ``K`` steps
beyond the ``S`` trained ones takes :math:`\alpha S / K` at the steps past ``S``
(:func:`~.base.trained_step`); a step reads :math:`\alpha` clamped into ``[min_rate, max_rate]``
(:meth:`~.base.Algorithm.bounded`), so no outer optimizer can turn it into gradient ascent.
"""

from __future__ import annotations

import torch
from torch import nn

from ...learners.banks.bank_set import BankSet
from .base import ALGORITHMS, Algorithm, InnerLoopSettings, share_of, trained_step


@ALGORITHMS.register
class MetaSGD(Algorithm):
    """Meta-SGD: a learned rate per parameter."""

    name = "metasgd"

    def build_rates(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        self.trained_steps = max(settings.inner_steps, 1)
        self.rate_scales = nn.ModuleList(
            nn.ParameterDict({} if bank.closed_form else
                             {name: nn.Parameter(torch.ones_like(theta)) for name, theta in bank.theta.items()})
            for bank in banks)

    def rate(self, index: int, name: str, step: int, steps: int) -> torch.Tensor:
        return share_of(self.bounded(self.rate_scales[index][name]), trained_step(step, steps, self.trained_steps)[1])

    def learned_rates(self) -> list[nn.Parameter]:
        return list(self.rate_scales.parameters())
