"""How a process uses the machine: threads and processes for the computation, the allocator and the
garbage collector.

`configure_process()` is called once, when the `gexhistory` command starts (worker processes
forked from it inherit the settings). The counts are read from the environment and checked before a
run writes anything (a bad value is bad input, exit 2). Nothing here imports numpy: a rerun with
nothing to do reads these too.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import os
import signal

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


# Start-up (click, SQLAlchemy, numpy, the schema) creates objects that live as long as the process.
# With CPython's default gen-0 threshold of 700 the cyclic collector runs ~150 times during a no-op
# run, older generations and one full collection included, to free ~500 objects: ~60 ms of 0.6 s.
# Collections stay on, only rarer (a cold 3650-day run keeps the same peak memory).
GC_THRESHOLDS = (20_000, 20, 20)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the run ends as on Ctrl-C (workers ended, whole sessions kept, the run recorded
    as interrupted), instead of dying before it could say so."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def configure_process() -> None:
    """Tune this process for a gexhistory run: fewer garbage collections, freed memory kept, SIGTERM
    ending the run cleanly, no collections while it shuts down. Called once, by the `gexhistory` command
    as it starts."""
    gc.set_threshold(*GC_THRESHOLDS)
    _tune_allocator()
    signal.signal(signal.SIGTERM, _terminate)
    # Registered first, so it runs after every other exit handler (a Dask client's close included). While
    # the interpreter shuts down it collects several times over every object left: ~0.1 s after a
    # market-wide chain import, for nothing a process that ends needs (files and connections are closed
    # by the commands themselves, and by the system at exit).
    atexit.unregister(gc.freeze)  # once, however often a test process configures itself
    atexit.register(gc.freeze)


def _tune_allocator() -> None:
    """Keep freed memory in the process (glibc): the engine's arrays are hundreds of kilobytes, above
    glibc's default mmap threshold, so each would otherwise be mapped fresh and page-faulted in, then
    unmapped: a third of a long backfill's CPU time went to that. A no-op elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 256 << 20)
    mallopt(m_trim_threshold, 512 << 20)


def preload(module: str, *more: str):
    """Start importing `module` (then `more`, in order) on a background thread; returns a function that
    waits for them and returns `module`, raising what an import raised (with quiet=True: None instead).

    A command whose first step is C++ that releases the GIL (reading a file with Arrow) loads what its
    later steps need meanwhile: on a chain import, SQLAlchemy and the store are a fifth of a second of
    one core. Never fork while it runs (a child would inherit the import locks the thread holds)."""
    import importlib
    import threading

    done: dict = {}

    def load() -> None:
        try:
            done["module"] = importlib.import_module(module)
            for name in more:
                importlib.import_module(name)
        except BaseException as exc:  # handed to the caller, in its thread
            done["error"] = exc

    thread = threading.Thread(target=load, name=f"preload {module}", daemon=True)
    thread.start()

    def wait(quiet: bool = False):
        thread.join()
        if "error" in done and not quiet:
            raise done["error"]
        return done.get("module")

    return wait
