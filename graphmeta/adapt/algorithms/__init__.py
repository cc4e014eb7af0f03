"""The adaptation algorithms, one class per file, and the registry that names them.

A new algorithm is a subclass of :class:`~.base.Algorithm` in its own file and its class in
:data:`ALGORITHMS` (``GraphMetaLearner(algorithm=...)`` and the ``model.algorithm`` config key
accept every name there).
"""

from __future__ import annotations

from .alpaca import ALPaCA
from .anil import ANIL
from .base import Adaptation, Algorithm, InnerLoopSettings
from .cavia import CAVIA
from .fomaml import FOMAML
from .maml import MAML
from .mamlpp import MAMLPlusPlus
from .metasgd import MetaSGD
from .reptile import Reptile

ALGORITHMS: dict[str, type[Algorithm]] = {
    algorithm.name: algorithm for algorithm in (MAML, FOMAML, MetaSGD, ANIL, Reptile, MAMLPlusPlus, CAVIA, ALPaCA)
}


__all__ = ["ALGORITHMS", "ALPaCA", "ANIL", "CAVIA", "FOMAML", "MAML", "Adaptation", "Algorithm", "InnerLoopSettings",
           "MAMLPlusPlus", "MetaSGD", "Reptile"]
