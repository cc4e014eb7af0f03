"""Where a run computes: the ``train.device`` and ``train.threads`` settings made real.

``device`` is a torch device name (``cpu``, ``cuda``, ``cuda:1``, ``mps``); a name torch cannot
parse, or an accelerator this torch build or machine does not have, is a
:class:`~graphmeta.ConfigError` naming the setting and what is available, before any work starts.

``threads`` is the number of intra-op threads torch uses while the run trains or evaluates.
graphmeta's tensors are many small batched ops; on a machine whose cores are shared, OpenMP
threads that wait for each other at every op can make a step a hundred times slower than one
thread would. ``"auto"`` therefore takes the cores that are idle now,
``max(1, min(torch's default, cpus - round(load average over 1 min)))``, and an integer fixes
the count. The previous count is restored when the run's work ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, checked to exist here (see the module docstring)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"train.device {name!r} is not a device name ({error}); use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ConfigError(f"train.device is {name!r} but {build}: use train.device=cpu (or install a CUDA build "
                              "of torch on a machine with a GPU)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"train.device is {name!r} but this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s): use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device is {name!r} but MPS is not available here: use train.device=cpu")
    return device


def auto_threads() -> int:
    """The intra-op thread count that the idle cores allow (see the module docstring)."""
    cpus = os.cpu_count() or 1
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, min(torch.get_num_threads(), cpus - busy))


@contextlib.contextmanager
def thread_count(threads: int | str) -> Iterator[int]:
    """Run the block with ``threads`` intra-op threads (``"auto"``: :func:`auto_threads`), then
    restore the previous count; yields the count used."""
    previous = torch.get_num_threads()
    count = auto_threads() if threads == "auto" else int(threads)
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)
