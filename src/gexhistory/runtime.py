"""How a run uses the machine: threads and processes for the computation, and the allocator.

Read from the environment, checked before a run writes anything (a bad value is bad input, exit 2).
Nothing here imports numpy: a rerun with nothing to do reads these too.
"""

from __future__ import annotations

import os

from gexhistory.errors import BadInput

THREADS_ENV = "GEXHISTORY_ENGINE_THREADS"
PROCESSES_ENV = "GEXHISTORY_PROCESSES"


def _count(env: str, default: int) -> int:
    raw = os.environ.get(env)
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise BadInput(f"{env} must be a whole number from 1 to 64, got {raw!r}")
    return n


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def engine_threads() -> int:
    """Threads that run the engine ahead of the writer in one process (numpy releases the GIL in its
    loops): GEXHISTORY_ENGINE_THREADS, else two where the machine has two cores."""
    return _count(THREADS_ENV, max(1, min(2, _cores())))


def compute_processes() -> int:
    """Processes a long synthetic window is computed in (parts.split): GEXHISTORY_PROCESSES,
    else one per core, at most two (past two, start-up and the writer leave little to gain)."""
    return _count(PROCESSES_ENV, max(1, min(2, _cores())))


def tune_allocator() -> None:
    """Keep freed memory in the process (glibc): the engine's arrays are hundreds of kilobytes, above
    glibc's default mmap threshold, so each would otherwise be mapped fresh and page-faulted in, then
    unmapped: a third of a long backfill's CPU time went to that. A no-op elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 256 << 20)
    mallopt(m_trim_threshold, 512 << 20)
