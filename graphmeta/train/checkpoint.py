"""Checkpoints that never lose work: atomic writes, safe loading, and the state of every RNG.

A write goes to a temporary file in the target's directory, is flushed and fsynced, read back
with ``torch.load(weights_only=True)``, and only then moved over the target with
``os.replace`` (atomic on POSIX and Windows); the directory is fsynced so the rename survives
a power cut. A process killed at any instant leaves either the old file or the new one,
never a torn one, and a state that cannot be loaded never replaces a good file.

Checkpoints hold only tensors and primitive containers, so they load with
``weights_only=True``, which cannot run code from a file.

A checkpoint records the model it belongs to: its settings (``model_config``) and its task graph
(``graph`` and ``graph_fingerprint``, :func:`graph_record`). Loading it into another model is a
:class:`CheckpointError` listing every setting that differs (``saved -> current``) and how the
graphs differ (:func:`model_differences`).
"""

from __future__ import annotations

import io
import os
import pickle
import random
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..errors import CheckpointError, RunStorageError
from ..learners.banks.bank_set import bank_shapes
from ..taskgraph.comparison import graph_differences, graph_fingerprint

#: 4: MLP and GNN banks learn the noise scale of their regression outputs (``log_noise_std``).
#: 3: learned inner rates stored as scales of ``inner_lr`` (``algorithm.rate_scales``). 2: learner
#: banks name their weights (``theta.head_weight``), algorithms own their rates (``algorithm.inner_lrs``).
#: 1: graphmeta 0.1, positional weights (``theta.0``).
FORMAT_VERSION = 4
FORMAT_HISTORY = {1: "graphmeta 0.1, whose banks stored their weights by position (theta.0, theta.1, ...)",
                  2: "graphmeta 0.1 before learned inner rates were stored as scales of inner_lr (algorithm.rates)",
                  3: "graphmeta 0.1 before MLP and GNN banks learned a noise scale (log_noise_std), whose "
                     "models and optimizer states lack it"}


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically: ``write(file)`` fills a temporary file in the same directory,
    which replaces ``path`` after flush and fsync. A write the system refuses (a full disk, say)
    is a :class:`~graphmeta.errors.RunStorageError` (:func:`storage_error`), ``path`` as it was."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, RunStorageError):
            kept = f"the previous {path.name} is intact" if path.exists() else f"{path.name} was not created"
            raise storage_error(path, error, f"{kept} (a failed write never replaces a file)") from error
        raise
    _fsync_directory(path.parent)
    return path


def storage_error(path: Path, error: OSError, kept: str) -> RunStorageError:
    """The :class:`~graphmeta.errors.RunStorageError` of writing ``path``, which failed with ``error``:
    the file, the system's reason, the space left in its folder, and ``kept``, what is intact."""
    folder = next((parent for parent in (path.parent, *path.parents) if parent.is_dir()), Path("."))
    try:
        free = f"{_size(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    return RunStorageError(f"cannot write {path}: {error.strerror or error} ({free} in {folder}); {kept}")


def _size(count: float) -> str:
    """``count`` bytes in the largest unit that keeps it at 1 or more (``3.2 GB``)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000:
            return f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} TB"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``state`` (tensors and primitive containers only) to ``path`` atomically.

    The bytes are loaded back with ``weights_only=True`` before they replace ``path``, so a
    state that could not be loaded later fails now, naming the file, and leaves ``path`` as it was.
    """
    buffer = io.BytesIO()
    torch.save({"format": FORMAT_VERSION, **state}, buffer)
    data = buffer.getvalue()
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"cannot write checkpoint {path}: its state holds something other than tensors "
                              f"and primitive containers ({error})") from None
    return atomic_write(path, lambda file: file.write(data))


def load_checkpoint(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Raises :class:`CheckpointError` naming ``path`` when it is missing, truncated, corrupt, of
    another format, or lacks one of the ``required`` keys.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): it was never written completely; "
                              "delete it to start over")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" not in str(error).lower():
            raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be loaded "
                                  f"({_unpickler_detail(str(error))}); delete it to start over") from None
        raise CheckpointError(f"checkpoint {path} holds {_unsafe_global(str(error))}, which graphmeta never writes "
                              "and will not load (loading it could run code from the file)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be loaded ({error}); "
                              "delete it to start over") from None
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if found in FORMAT_HISTORY:
        raise CheckpointError(f"{path} is a checkpoint of format {found}, written by {FORMAT_HISTORY[found]}; this "
                              f"graphmeta reads format {FORMAT_VERSION}: retrain the run, or load it with the "
                              "graphmeta version that wrote it")
    if found != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a graphmeta checkpoint of format {FORMAT_VERSION} (found {found!r})")
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(map(repr, missing))}")
    return state


def _unsafe_global(message: str) -> str:
    """The global that torch's safe loader refused, as its message names it, without torch's
    advice to load unsafely."""
    match = re.search(r"(?:Unsupported global|GLOBAL)[: ]+(?:GLOBAL )?([\w.]+)", message)
    return f"the Python object {match.group(1)!r}" if match else "a Python object that is not a tensor"


def _unpickler_detail(message: str) -> str:
    """The unpickler's own complaint from torch's message (which goes on to advise unsafe loading)."""
    match = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    return match.group(1).strip() if match else message.splitlines()[0]


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators, as tensors and lists."""
    version, words, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "words": list(words), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the generators from :func:`rng_state`."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["words"]), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state((numpy["name"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _fsync_directory(directory: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows; os.replace is durable there
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def restore_model_and_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                                state: Mapping[str, Any], source: str) -> None:
    """Load ``state["model"]`` and ``state["optimizer"]``; a checkpoint of another model (other
    settings, or another task graph: :func:`model_differences`), or one that does not fit, is a
    :class:`CheckpointError` naming ``source`` and every difference."""
    differences = model_differences(state, model)
    if differences:
        raise CheckpointError(f"{source} was written by another model than this one: {'; '.join(differences)}. "
                              "Load it into a model built with the checkpoint's settings and graph "
                              "(GraphMetaLearner.from_run / graphmeta evaluate RUN_DIR rebuild it from the run)")
    saved_banks, current_banks = (len(bank_shapes(weights)) for weights in (state["model"], model.state_dict()))
    if saved_banks != current_banks:
        raise CheckpointError(f"{source} holds {saved_banks} learner banks where this model has {current_banks}: it "
                              "was written by a graphmeta version that grouped the nodes otherwise (Table nodes "
                              "are now grouped by table size); train the run again with this version")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        problems = [line.strip() for line in str(error).splitlines()[1:] if line.strip()] or [str(error)]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{source} does not fit this model: {problems[0]}{more}") from None



def graph_record(graph: Any) -> dict[str, Any]:
    """What a checkpoint records of the model's task graph: ``graph`` (its
    :meth:`~graphmeta.TaskGraph.to_dict`) and ``graph_fingerprint``
    (:func:`~graphmeta.taskgraph.comparison.graph_fingerprint`)."""
    described = graph.to_dict()
    return {"graph": described, "graph_fingerprint": graph_fingerprint(described)}


def model_differences(state: Mapping[str, Any], model: Any) -> list[str]:
    """How the model that wrote the checkpoint ``state`` differs from ``model``: every setting,
    as ``key: saved -> current``, then the graph's differences (a checkpoint written before
    graphs were recorded is compared by its settings alone). ``[]``: the same model."""
    saved, current = dict(state["model_config"]), model.config
    differences = [f"model.{key}: {saved.get(key)!r} -> {current.get(key)!r}"
                   for key in sorted({*saved, *current}) if saved.get(key) != current.get(key)]
    if "graph" in state:
        recorded = graph_record(model.graph)
        if state.get("graph_fingerprint") != recorded["graph_fingerprint"]:
            changed = graph_differences(state["graph"], recorded["graph"], "the checkpoint's graph", "this model's")
            differences.append(f"task graph ({'; '.join(changed) or 'fingerprints differ'})")
    return differences


def require_finite_parameters(model: torch.nn.Module, when: str) -> None:
    """A :class:`~graphmeta.errors.TrainingError` naming the first non-finite parameter: such a model
    is never checkpointed."""
    from ..errors import TrainingError

    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise TrainingError(f"parameter {name!r} is not finite {when}: refusing to checkpoint it")
