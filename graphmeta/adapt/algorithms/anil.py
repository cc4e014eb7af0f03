r"""ANIL (Raghu et al. 2020, "Rapid Learning or Feature Reuse?").

Only the output layer (the bank's ``head``) adapts; the body is shared by every task,
:math:`\phi^{head}_{s+1} = \phi^{head}_s - \alpha_s \nabla L_{support}`,
:math:`\phi^{body} = \theta^{body}`; second-order meta-gradient as in MAML.
"""

from __future__ import annotations

from ...learners.banks.bank import LearnerBank
from .base import ALGORITHMS, Algorithm


@ALGORITHMS.register
class ANIL(Algorithm):
    """Almost No Inner Loop: adapt the head only."""

    name = "anil"

    def adapting_names(self, bank: LearnerBank) -> tuple[str, ...]:
        return bank.head
