r"""MAML++ (Antoniou et al. 2019, "How to train your MAML"), its two changes to the inner loop
and the meta-loss:

* **learned per-layer, per-step rates** (LSLR): weight ``w`` of node ``n`` takes step ``s`` with
  its own learned rate, :math:`\phi^w_{s+1} = \phi^w_s - \alpha^w_{s,n} \nabla_{\phi^w} L_{support}(\phi_s)`
  (every rate starts at ``inner_lr``, as ``inner_lr`` times its scale ``rate_scales`` at 1, :mod:`.base`; adapting with ``K`` steps, more than the ``S =
  inner_steps`` trained ones, takes the last rate times ``S / K`` past step ``S``,
  :func:`~.base.trained_step`; a step reads each rate clamped into ``[min_rate, max_rate]``,
  :meth:`~.base.Algorithm.bounded`);
* **multi-step loss** (MSL): the meta-loss weighs the query loss after every step,
  :math:`\sum_{s=1}^{S} v_s L_{query}(\phi_s)`, with importances :math:`v` annealed from uniform
  to the last step over the first ``ANNEAL_FRACTION`` of training (the authors' schedule:
  non-final weights fall linearly to ``0.03 / S``, the final one takes the rest). The
  training loop reports progress through :meth:`~.base.Algorithm.set_progress`; a model
  that is never told anneals nothing and keeps the uniform weights.

The message-passing correction applies to the last step, so :math:`\phi_S` is the corrected
weights. The other changes of the paper (per-step batch norm, cosine outer schedule,
derivative-order annealing) concern networks with batch norm or are run-config choices
(``train.schedule: cosine``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ...learners.banks.bank import Weights
from ...learners.banks.bank_set import BankSet
from .base import ALGORITHMS, Adaptation, Algorithm, InnerLoopSettings, share_of, trained_step

#: Fraction of meta-training over which the multi-step importances anneal to the last step.
ANNEAL_FRACTION = 0.15
#: Floor of each non-final step's importance, times the number of steps (the authors' 0.03).
FLOOR = 0.03


@ALGORITHMS.register
class MAMLPlusPlus(Algorithm):
    """MAML++: per-layer, per-step learned rates and the annealed multi-step loss."""

    name = "mamlpp"
    uses_every_step = True

    def __init__(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        super().__init__(banks, settings)
        self.register_buffer("progress", torch.zeros(()))

    def build_rates(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        steps = max(settings.inner_steps, 1)
        self.rate_scales = nn.ModuleList(
            nn.ParameterDict({} if bank.closed_form else
                             {name: nn.Parameter(torch.ones(steps, len(bank), *[1] * (theta.dim() - 1)))
                              for name, theta in bank.theta.items()})
            for bank in banks)

    def rate(self, index: int, name: str, step: int, steps: int) -> torch.Tensor:
        """``[N_b, 1, ...]``: each node's rate of weight ``name`` at ``step`` of ``steps``."""
        scales = self.rate_scales[index][name]
        trained, share = trained_step(step, steps, len(scales))
        return share_of(self.bounded(scales[trained]), share)

    def learned_rates(self) -> list[nn.Parameter]:
        return list(self.rate_scales.parameters())

    def set_progress(self, fraction: float) -> None:
        self.progress.fill_(min(max(float(fraction), 0.0), 1.0))

    def importances(self, steps: int) -> torch.Tensor:
        """``v [S]``: uniform at progress 0, the last step alone (up to the floors) once annealed."""
        if steps == 1:
            return torch.ones_like(self.progress).reshape(1)
        done = self.progress / ANNEAL_FRACTION  # tensors throughout, which torch.compile captures
        earlier = (1.0 / steps * (1 - done)).clamp(min=FLOOR / steps)
        return torch.cat([earlier.expand(steps - 1), (1.0 - earlier * (steps - 1)).reshape(1)])

    def outer_loss(self, query_loss: torch.Tensor, adaptation: Adaptation,
                   query_loss_of: Callable[[Sequence[Weights]], torch.Tensor]) -> torch.Tensor:
        steps = len(adaptation.steps)
        if steps < 2:
            return query_loss
        importances = self.importances(steps)
        earlier = sum(v * query_loss_of(fast) for v, fast in zip(importances, adaptation.steps[:-1]))
        return earlier + importances[-1] * query_loss
