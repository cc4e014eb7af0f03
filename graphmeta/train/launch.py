"""Starting a data-parallel run on this machine: what ``graphmeta train CONFIG --nproc N`` does.

:func:`run_on_processes` starts ``N`` processes through torch's own elastic launcher, exactly as
``torchrun --standalone --nproc-per-node=N`` would (a rendezvous on a free local port, each
process given ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``),
and each of them calls the function it is given; :mod:`.distributed` does the rest. Unless
``OMP_NUM_THREADS`` is set, each process gets cores / ``N`` of them (at least 1; torchrun sets 1),
so the processes do not compete for the cores. Runs over several machines use ``torchrun`` itself
(README, "Scaling out").
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, GraphMetaError
from ..validation import PositiveInt, check_arguments


def run_on_processes(nproc: PositiveInt, function: Callable[..., Any], *args: Any, backend: str | None = None,
                     what: str = "running") -> Any:
    """``function(*args)`` in ``nproc`` processes of one data-parallel run on this machine; the
    value rank 0 returned. A GraphMetaError raised there is raised here (every process raises the
    same); any other failure is torch's ``ChildFailedError``, naming the process and its traceback.
    First a line says ``what`` runs, on how many processes, with which collective ``backend`` and
    how many CPU threads each."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nproc = check_arguments(run_on_processes, {"nproc": nproc}, "run_on_processes()")["nproc"]
    if os.environ.get("WORLD_SIZE"):
        raise ConfigError("this process already belongs to a run of several processes (WORLD_SIZE is set, as torchrun "
                          "sets it): leave out --nproc under torchrun")
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    threads = os.environ["OMP_NUM_THREADS"]
    print(f"{what} on {nproc} processes of this machine (torch elastic launch, backend {backend or 'auto'}, "
          f"{threads} CPU thread{'' if threads == '1' else 's'} each)", flush=True)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    results = elastic_launch(config, _call)(function, *args)
    outcome = results[0]
    if isinstance(outcome, GraphMetaError):
        raise outcome
    return outcome


def _call(function: Callable[..., Any], *args: Any) -> Any:
    """One process of :func:`run_on_processes`: a GraphMetaError is returned, for the caller to raise."""
    try:
        return function(*args)
    except GraphMetaError as error:
        return error
