"""Task families: distributions over tasks of one task graph, sampled as `TaskBatch` episodes.

Every family has ``graph`` and ``sample(num_tasks, shots, query, split, seed)``; dataset
cards (``datasets/*.yaml``) name ready-made ones, loaded with :func:`load_family`.
"""

from ..interop.cpd_table import CPDTable
from .arml import ARML2DFamily
from .base import SPLITS, TaskFamily
from .bayesnet import BayesNetFamily, batch_from_dataframes
from .cards import FAMILIES, Card, FamilySection, available_cards, load_card, load_family
from .compositional import CompositionalFamily
from .dataframe import ColumnCoding, DataFrameFamily
from .functions import FunctionsFamily
from .gaussian import GaussianNetFamily
from .graph_subtasks import GraphSubtasksFamily
from .monolithic import MonolithicFamily
from .sinusoid import SinusoidFamily

__all__ = [
    "ARML2DFamily",
    "BayesNetFamily", "CPDTable", "Card", "ColumnCoding", "CompositionalFamily", "DataFrameFamily", "FAMILIES",
    "FamilySection", "FunctionsFamily", "GaussianNetFamily",
    "GraphSubtasksFamily", "MonolithicFamily", "SPLITS", "SinusoidFamily", "TaskFamily", "available_cards", "batch_from_dataframes",
    "load_card", "load_family",
]
