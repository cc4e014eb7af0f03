r"""CAVIA (Zintgraf et al. 2019, "Fast Context Adaptation via Meta-Learning").

Each node's network is shared by every task; what adapts is a small per-task context vector
:math:`c \in \mathbb{R}^m` (the option ``context_dim``), reset to zero for each task and fed to the
node's first layer alongside its inputs:

.. math::
    h_1 = \mathrm{act}(x W + c\, W_c + b), \qquad c_0 = 0, \qquad
    c_{s+1} = c_s - \alpha_s \nabla_c L_{support}(c_s),

and the meta-gradient of the query loss trains :math:`\theta = (W, b, \dots)` and the context
projection :math:`W_c` (second order). Concatenating :math:`c` to an MLP's input is exactly this
shift of the first layer's bias by :math:`c W_c`; for a GNN the shift enters every graph node's
first convolution. A closed-form bank (Table, Linear) keeps its conjugate update.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...learners.banks.bank import LearnerBank, Weights
from ...learners.banks.bank_set import BankSet
from ...validation import PositiveInt
from .base import ALGORITHMS, Algorithm, InnerLoopSettings


@ALGORITHMS.register
class CAVIA(Algorithm):
    """CAVIA: adapt a per-task context; the networks stay shared."""

    name = "cavia"

    def __init__(self, banks: BankSet, settings: InnerLoopSettings, *, context_dim: PositiveInt = 4) -> None:
        super().__init__(banks, settings)
        self.context_dim = context_dim
        #: ``W_c [N_b, m, H]`` of every bank that takes a context, keyed by bank index.
        self.projections = nn.ParameterDict({
            str(index): nn.Parameter(torch.empty(len(bank), self.context_dim, bank.theta[bank.first_bias].shape[-1]))
            for index, bank in enumerate(banks) if _takes_context(bank)})
        self.first_biases = {str(index): bank.first_bias for index, bank in enumerate(banks) if _takes_context(bank)}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``W_c`` as ``nn.Linear`` would initialise the context's input columns."""
        bound = 1.0 / math.sqrt(self.context_dim)
        with torch.no_grad():
            for projection in self.projections.values():
                projection.uniform_(-bound, bound)

    def adapting_names(self, bank: LearnerBank) -> tuple[str, ...]:
        return ("context",) if _takes_context(bank) else super().adapting_names(bank)

    def initial(self, index: int, bank: LearnerBank, num_tasks: int) -> Weights:
        fast = bank.expand(num_tasks)
        if str(index) not in self.projections:
            return fast
        projection = self.projections[str(index)]
        context = projection.new_zeros(num_tasks, len(bank), self.context_dim)
        if not torch.compiler.is_compiling():  # the eager loop differentiates it; torch.func.grad needs no flag
            context.requires_grad_()
        return {**fast, "context": context}

    def compose(self, index: int, fast: Weights) -> Weights:
        if "context" not in fast:
            return fast
        weights = dict(fast)
        context = weights.pop("context")  # [T, N_b, m]
        shift = (context.unsqueeze(-2) @ self.projections[str(index)]).squeeze(-2)  # [T, N_b, H]
        first_bias = self.first_biases[str(index)]
        weights[first_bias] = weights[first_bias] + shift
        return weights

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, context_dim={self.context_dim}"


def _takes_context(bank: LearnerBank) -> bool:
    return bank.first_bias is not None and not bank.closed_form
