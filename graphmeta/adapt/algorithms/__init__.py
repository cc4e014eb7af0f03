"""The adaptation algorithms, one class per file, and the registry that names them.

A new algorithm is a subclass of :class:`~.base.Algorithm` in its own file and one line in
:data:`ALGORITHMS`.
"""

from __future__ import annotations

from ...errors import ConfigError, closest
from .anil import ANIL
from .base import Adaptation, Algorithm, InnerLoopSettings
from .cavia import CAVIA
from .fomaml import FOMAML
from .maml import MAML
from .mamlpp import MAMLPlusPlus
from .metasgd import MetaSGD
from .reptile import Reptile

ALGORITHMS: dict[str, type[Algorithm]] = {
    algorithm.name: algorithm for algorithm in (MAML, FOMAML, MetaSGD, ANIL, Reptile, MAMLPlusPlus, CAVIA)
}


def algorithm_named(name: str) -> type[Algorithm]:
    """The algorithm class called ``name``; a :class:`ConfigError` with a hint otherwise."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}{closest(name, ALGORITHMS)}; choose one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


__all__ = ["ALGORITHMS", "ANIL", "CAVIA", "FOMAML", "MAML", "Adaptation", "Algorithm", "InnerLoopSettings",
           "MAMLPlusPlus", "MetaSGD", "Reptile", "algorithm_named"]
