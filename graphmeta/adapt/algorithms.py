"""The adaptation algorithms, as the few switches that tell them apart.

All of them take inner steps ``phi <- phi - alpha * grad L_support(phi)`` from the
meta-initialisation ``theta``; they differ in what adapts, what ``alpha`` is, and which
meta-gradient reaches ``theta``:

* ``maml`` (Finn et al. 2017): second-order meta-gradient ``d L_query(phi(theta)) / d theta``.
* ``fomaml``: first-order MAML, treating ``grad L_support`` as a constant, so
  ``d phi / d theta = I``.
* ``metasgd`` (Li et al. 2017): ``alpha`` is a learned tensor with one rate per parameter
  (per node), second-order.
* ``anil`` (Raghu et al. 2020): only the output layer adapts; the body is shared, second-order.
* ``reptile`` (Nichol et al. 2018): no query loss for ``theta``; its meta-gradient is
  ``theta - phi`` averaged over tasks (the gradient of ``1/2 ||theta - phi||^2``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, closest


@dataclass(frozen=True)
class Algorithm:
    """How a bank adapts (see the module docstring for the update rules)."""

    name: str
    second_order: bool
    adapt_body: bool = True
    per_parameter_lr: bool = False
    reptile: bool = False


ALGORITHMS = {
    "maml": Algorithm("maml", second_order=True),
    "fomaml": Algorithm("fomaml", second_order=False),
    "metasgd": Algorithm("metasgd", second_order=True, per_parameter_lr=True),
    "anil": Algorithm("anil", second_order=True, adapt_body=False),
    "reptile": Algorithm("reptile", second_order=False, reptile=True),
}


def algorithm_named(name: str) -> Algorithm:
    """The :class:`Algorithm` called ``name``; a :class:`ConfigError` with a hint otherwise."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}{closest(name, ALGORITHMS)}; choose one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
