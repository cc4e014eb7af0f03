r"""First-order MAML (Finn et al. 2017, section 5.2).

The inner steps are MAML's, but the support gradient is treated as a constant, so
:math:`d\phi / d\theta = I` and the meta-gradient is the query gradient at the adapted
weights, :math:`\nabla_\phi L_{query}(\phi_S)`: no second derivatives, a fraction of the memory.
"""

from __future__ import annotations

from .base import ALGORITHMS, Algorithm


@ALGORITHMS.register
class FOMAML(Algorithm):
    """First-order MAML."""

    name = "fomaml"
    second_order = False
