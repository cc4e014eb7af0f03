"""The exceptions graphmeta raises, and the warnings it gives. Each names what is wrong and, where it
can, what to do.

All of them subclass a built-in exception, so ``except ValueError`` keeps working for code
that does not know graphmeta.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GraphMetaError(Exception):
    """Base class of every exception raised by graphmeta."""


class GraphError(GraphMetaError, ValueError):
    """A task graph is malformed: a cycle, an unknown node, a bad subtask spec."""


class DataError(GraphMetaError, ValueError):
    """Task data do not fit the graph: NaN, empty support sets, wrong shapes or dtypes."""


class ConfigError(GraphMetaError, ValueError):
    """A configuration (YAML file, dataset card, keyword arguments) has an unknown key or a wrong type."""


class SpecError(GraphError, ConfigError):
    """A subtask or learner spec has an unknown key, a wrong type or a value out of range.

    It is both kinds of error: the graph is malformed (``except GraphError``) because its
    configuration is wrong (``except ConfigError``, like every unknown key or keyword).
    """


class CheckpointError(GraphMetaError, ValueError):
    """A checkpoint file is missing, truncated, corrupt or from an incompatible model."""


class TrainingError(GraphMetaError, RuntimeError):
    """Training cannot go on, for example because the loss became non-finite."""


class DistributionShiftWarning(UserWarning):
    """A task's inputs lie far from every input meta-training saw, so adapting to it extrapolates."""


class RunStorageError(GraphMetaError, OSError):
    """A file of a run (a checkpoint, metrics, the summary) could not be written: the disk is full,
    a quota or a file-size limit is reached, or the folder is not writable. The message names the
    file, its folder and the space left there, and says what stays intact (the previous file: a
    failed write never replaces it)."""


def closest(key: str, valid: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` hint naming the valid key closest to ``key``, or ``""``."""
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_keys(given: Iterable[str], valid: Iterable[str], where: str, error: type[Exception] = ConfigError,
               kind: str = "key") -> None:
    """Raise ``error`` naming the first key of ``given`` that is not in ``valid``, with the closest
    valid one; ``kind`` is what a key is called there (``"keyword"`` for Python arguments)."""
    valid = list(valid)
    for key in given:
        if key not in valid:
            raise error(f"unknown {kind} {key!r} in {where}{closest(str(key), valid)}; "
                        f"valid {kind}s: {', '.join(sorted(valid))}")
