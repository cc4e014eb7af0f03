"""How banks adapt: the algorithms, the batched inner loop, and the graph-level meta-learner."""

from .algorithms import ALGORITHMS, Algorithm
from .message_passing import ParameterMessagePassing

__all__ = ["ALGORITHMS", "Algorithm", "ParameterMessagePassing"]
