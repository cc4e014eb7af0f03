r"""MAML (Finn et al. 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks").

Every weight adapts by ``S`` gradient steps on the support loss,

.. math::
    \phi_0 = \theta, \qquad \phi_{s+1} = \phi_s - \alpha_s \nabla_\phi L_{support}(\phi_s),

and the meta-gradient of the query loss flows back through the steps (second order):
:math:`\nabla_\theta L_{query}(\phi_S(\theta))`. ``learn_inner_lr`` learns one
:math:`\alpha_s` per step.
"""

from __future__ import annotations

from .base import ALGORITHMS, Algorithm


@ALGORITHMS.register
class MAML(Algorithm):
    """Second-order MAML: the base algorithm as it is."""

    name = "maml"
