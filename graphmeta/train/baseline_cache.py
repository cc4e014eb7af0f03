"""A cache of the baselines that do not depend on the meta-trained model.

Learners trained from scratch on each task's support set (:mod:`.evaluation`'s ``from_scratch``,
its step count and rate chosen on the validation tasks) see nothing of the meta-learned weights:
their results are a function of the graph, the validation and evaluated tasks, the seed and the
settings searched. Yet they are most of an evaluation's time (a few minutes for the demo's 37
nodes). So their results are kept in ``RUN_DIR/.baseline-cache/`` (``RUN_DIR`` the folder that
holds the runs, ``train.run_dir``), under the SHA-256 of everything they depend on: the tensors of
the tasks themselves, not a description of them, so an entry can never be stale. Evaluating a run
again, with other adaptation steps, or another run on the same tasks (the demo run again, a
tuning study's trials) reads them back instead of training them again.

An entry is a tensor file loaded with ``weights_only=True``; a damaged one, or one written before
the result held all it holds now (a missing key), is computed again, and a cache that cannot be
written (a full disk, a read-only folder) only costs the time it would save.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write

CACHE_FOLDER = ".baseline-cache"


def digest(*parts: Any) -> str:
    """The SHA-256 of ``parts``: tensors by dtype, shape and bytes; dataclasses (task batches,
    splits) by their fields; mappings and sequences by their items; anything else by its ``repr``."""
    hasher = hashlib.sha256()
    _feed(hasher, parts)
    return hasher.hexdigest()


def cached(folder: Path | None, key: str, compute: Callable[[], dict[str, Any]],
           required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``compute()`` (tensors and primitive containers), read from ``folder/<key>.pt`` when it is
    there and holds every key of ``required``, else computed and written there; ``folder``
    ``None``: no cache."""
    if folder is None:
        return compute()
    path = folder / f"{key}.pt"
    if path.is_file():
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            if all(name in entry for name in required):
                return entry
            # an entry of an older result: computed again below, and replaced
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile):
            pass  # a damaged entry: computed again below, and replaced
    value = compute()
    try:
        atomic_write(path, lambda file: torch.save(value, file))
    except OSError:
        pass  # the cache only saves time: a result it cannot keep is still the result
    return value


def _feed(hasher: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        hasher.update(f"tensor {tensor.dtype} {tuple(tensor.shape)}".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        hasher.update(type(value).__name__.encode())
        for field in dataclasses.fields(value):
            if field.compare:
                _feed(hasher, getattr(value, field.name))
    elif hasattr(value, "to_dict") and callable(value.to_dict):  # a task graph
        _feed(hasher, value.to_dict())
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            hasher.update(repr(key).encode())
            _feed(hasher, value[key])
    elif isinstance(value, (list, tuple)):
        hasher.update(f"sequence {len(value)}".encode())
        for item in value:
            _feed(hasher, item)
    else:
        hasher.update(repr(value).encode())
