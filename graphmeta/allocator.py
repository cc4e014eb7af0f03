"""Keep large CPU tensor allocations in the heap instead of fresh ``mmap`` calls.

glibc's ``malloc`` serves every block above its ``mmap`` threshold (128 KiB, rising to at most
32 MiB as such blocks are freed) with its own ``mmap`` and returns it with ``munmap`` on free,
and it hands the top of the heap back to the kernel once more than the trim threshold is free.
A meta-step allocates and frees many activation-sized buffers, so without help the kernel
zeroes and maps the same pages again at every step: the throughput benchmark's step takes about
3x as long on a 4,096-node graph (1.1-1.2x on 64 nodes). Turning ``mmap`` off for ``malloc`` and trimming off
for the heap (threshold ``-1``: a finite one, even 2 GiB, is crossed by the multi-GiB steps of
large graphs, and the pages are returned and faulted in again every step) reuses the pages
instead. The price is memory: the process keeps its peak heap, holes included, until it ends.

It is process-wide, so the library never does it on import. The engine does it once, the
first time it runs on the CPU (:func:`reuse_large_allocations_once`, called by
:class:`~graphmeta.GraphMetaLearner`), so a plain script gets the speed the benchmarks measure;
set the environment variable ``GRAPHMETA_REUSE_ALLOCATIONS=0`` to keep glibc's defaults
(glibc's own ``MALLOC_MMAP_MAX_`` and ``MALLOC_TRIM_THRESHOLD_`` variables set the same two
parameters). The ``graphmeta`` commands call :func:`reuse_large_allocations` at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: The environment variable that, set to ``0``, keeps the engine from changing ``malloc``'s settings.
OPT_OUT_VARIABLE = "GRAPHMETA_REUSE_ALLOCATIONS"

_engine_has_run = False


def reuse_large_allocations() -> bool:
    """Ask glibc's ``malloc`` to keep freed memory for reuse; ``False`` where that is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, -1))


def reuse_large_allocations_once() -> None:
    """:func:`reuse_large_allocations` the first time the engine runs in this process, unless
    ``GRAPHMETA_REUSE_ALLOCATIONS=0``; later calls do nothing."""
    global _engine_has_run
    if _engine_has_run:
        return
    _engine_has_run = True
    if os.environ.get(OPT_OUT_VARIABLE, "1").strip() != "0":
        reuse_large_allocations()
