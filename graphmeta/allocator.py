"""Keep large CPU tensor allocations in the heap instead of fresh ``mmap`` calls.

glibc's ``malloc`` serves every allocation above 32 MiB with its own ``mmap`` and returns it
with ``munmap`` on free. A meta-step on thousands of nodes allocates and frees several such
buffers (fast weights ``[T, N, ...]`` and their gradients) every step, so the kernel zeroes
and maps the same pages again each time: on a 4,096-node graph half the step was page
faults. Turning ``mmap`` off for ``malloc`` and trimming off for the heap (threshold ``-1``:
a finite threshold, even 2 GiB, is crossed by the multi-GiB steps of such graphs, and the
pages are returned and faulted in again every step) reuses the pages instead. It is
process-wide, so the library never does it on import; the ``graphmeta`` commands and the
benchmarks call it, and users may (glibc's ``MALLOC_MMAP_MAX_`` and ``MALLOC_TRIM_THRESHOLD_``
environment variables set the same two parameters).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


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
