"""The adaptation algorithms, one class per file, each registered in :data:`ALGORITHMS` by its module.

``GraphMetaLearner(algorithm=...)`` and the ``model.algorithm`` config key accept every name
there; :func:`build_algorithm` builds one with its options (``algorithm_options``).
"""

from __future__ import annotations

from .alpaca import ALPaCA
from .anil import ANIL
from .base import ALGORITHMS, Adaptation, Algorithm, InnerLoopSettings, algorithm_options, build_algorithm
from .cavia import CAVIA
from .fomaml import FOMAML
from .maml import MAML
from .mamlpp import MAMLPlusPlus
from .metasgd import MetaSGD
from .reptile import Reptile

__all__ = ["ALGORITHMS", "ALPaCA", "ANIL", "CAVIA", "FOMAML", "MAML", "Adaptation", "Algorithm", "InnerLoopSettings",
           "MAMLPlusPlus", "MetaSGD", "Reptile", "algorithm_options", "build_algorithm"]
