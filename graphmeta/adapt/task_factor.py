r"""The task factor: a few numbers per task that every factored node's prior reads, placed from the
support rows of all of them at once.

Where tasks (sites, groups) differ through a few shared causes, a node's coefficients move with
the task's factor :math:`u \sim N(0, I_r)` along the node's meta-learned loadings, so each node's
prior is :math:`N(M + A u, \dots)` (:class:`~graphmeta.learners.Linear`'s ``task_factors``). After
the inner loop each factored bank says what its nodes' support rows tell of :math:`u`, a Gaussian
in it (``bank.factor_evidence``: curvature :math:`H` and information :math:`g`), and the factor's
posterior collects every node of the graph:

.. math::
    P = I_r + \sum_{\text{nodes}} H, \qquad \hat u = P^{-1} \sum_{\text{nodes}} g,

one ``r x r`` solve per task. Each factored bank then moves its prior mean to :math:`M + A \hat u`
and takes its update under it (``bank.factor_shifted``). A node with few rows thus starts from
where the task's other nodes place it; as its own rows grow its estimate still goes to its own
least-squares fit. Banks of fewer factors read the first of them. Message passing, where it is on,
reads the moved prior as the one the update started from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..learners.banks.bank import Weights
from ..learners.banks.bank_set import BankSet


def task_factor_size(banks: BankSet) -> int:
    """How many task factors the graph's banks read (the most any one reads; 0: none)."""
    return max([0] + [bank.task_factors for bank in banks])  # max() of a list: torch.compile captures it


def shared_task_factor(banks: BankSet, initial: list[Weights], plain: list[Weights]
                       ) -> tuple[list[Weights], list[Weights], torch.Tensor]:
    r"""The task factor's posterior mean :math:`\hat u` ``[T, r]`` from the plain updates ``plain``
    of the priors ``initial`` (module docstring), every bank's prior moved by it, and every bank's
    update under its moved prior (the banks without factors as they were). At least one bank reads
    a factor."""
    size = task_factor_size(banks)
    evidence = [(size - bank.task_factors, *bank.factor_evidence(prior, adapted))
                for bank, prior, adapted in zip(banks, initial, plain) if bank.task_factors]
    curvature = sum(F.pad(h, (0, missing, 0, missing)) for missing, h, _ in evidence)
    information = sum(F.pad(g, (0, missing)) for missing, _, g in evidence)
    precision = curvature + torch.eye(size, dtype=curvature.dtype, device=curvature.device)
    factor = torch.cholesky_solve(information[..., None], torch.linalg.cholesky(precision))[..., 0]
    moved, shifted = [], []
    for bank, prior, adapted in zip(banks, initial, plain):
        prior, adapted = bank.factor_shifted(prior, adapted, factor) if bank.task_factors else (prior, adapted)
        moved.append(prior)
        shifted.append(adapted)
    return moved, shifted, factor
