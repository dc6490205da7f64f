"""The one way gexhistory runs work in parallel: tasks submitted to a `concurrent.futures.Executor`.

A task is a module-level function with picklable arguments that opens what it needs (its own
database engine, its own price source) and closes it before it returns, so the same task runs in
a local worker process or on a Dask cluster, and no database connection outlives it. Three
executors stand behind the same interface:

- `local_pool(n)`: a process pool on this machine. Workers are forked where the platform allows
  (start-up in milliseconds, the parent's imports and caches shared), spawned elsewhere. They end
  with their parent, SIGKILL included (Linux PR_SET_PDEATHSIG, and a watchdog that notices a new
  parent process), ignore Ctrl-C (the parent decides, then ends them), and send progress back on a
  queue (`report`).
- `cluster_pool(address)`: Dask distributed's executor for a scheduler at `tcp://host:8786`; for
  users who outgrow one machine. Progress arrives as each task ends.
- `threads(n)`: threads of this process, for numpy work that releases the GIL (compute.py runs the
  engine a few chunks ahead of the writer on them).
"""

from __future__ import annotations

import ctypes
from bisect import bisect_left
from itertools import accumulate
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from gexhistory.errors import BadInput, WorkerDied, WorkFailed

CLUSTER_ENV = "DASK_SCHEDULER_ADDRESS"
WATCHDOG_SECONDS = 0.2  # how often a worker checks that its parent still lives (where prctl is missing)

_progress: Any = None  # the queue of this worker process's parent, set by _init_local


def report(key: str, n: int) -> None:
    """Tell the parent that `n` more units of `key` are done (a no-op outside a local worker)."""
    if _progress is not None:
        _progress.put((key, n))


class Pool:
    """An executor and the progress its tasks report; `close(cancel=True)` ends the work now."""

    def __init__(self, executor: Executor, kind: str, progress_queue=None, client=None):
        self.executor = executor
        self.kind = kind  # 'local' or 'cluster'
        self._queue = progress_queue
        self._client = client

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        return self.executor.submit(fn, *args, **kwargs)

    def progress(self) -> list[tuple[str, int]]:
        """Progress messages that arrived so far, without waiting."""
        out: list[tuple[str, int]] = []
        while self._queue is not None:
            try:
                out.append(self._queue.get_nowait())
            except queue_mod.Empty:
                break
        return out

    def wait(self, futures, timeout: float) -> tuple[set, set]:
        return wait_futures(futures, timeout=timeout)

    def close(self, cancel: bool = False) -> None:
        if self.kind == "local":
            if cancel:  # an error or an interrupt: the workers' open transactions die with them
                procs = getattr(self.executor, "_processes", None) or {}
                for proc in list(procs.values()):
                    if proc.is_alive():
                        proc.kill()
            self.executor.shutdown(wait=True, cancel_futures=cancel)
        else:
            self.executor.shutdown(wait=not cancel)
            self._client.close()
        if self._queue is not None:
            self._queue.close()
            self._queue.join_thread()


def result_of(future: Future):
    """A task's result; a worker that died without a word becomes WorkerDied."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkerDied("a worker process ended unexpectedly (killed, or out of memory)") from None
    except Exception as exc:
        if type(exc).__name__ == "KilledWorker":  # Dask gave up after the task's workers kept dying
            raise WorkerDied(f"the cluster lost the workers running a task: {exc}") from None
        raise


def local_pool(workers: int) -> Pool:
    """A pool of `workers` processes on this machine that die with this process."""
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    progress_queue = ctx.Queue()
    # max_tasks_per_child stays unset: replacement workers would be forked by the pool's manager
    # thread, and PR_SET_PDEATHSIG would then end them with that thread, not with this process.
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_local,
                                   initargs=(progress_queue, os.getpid()))
    return Pool(executor, "local", progress_queue)


def cluster_pool(address: str) -> Pool:
    """An executor on the Dask scheduler at `address` (tcp://host:8786)."""
    try:
        from distributed import Client  # lazy: an optional extra, gexhistory[cluster]
    except ImportError:
        raise BadInput("--cluster needs Dask distributed: pip install 'gexhistory[cluster]'") from None
    # Dask's own variable for the connect timeout, when set; else 10 s (Dask's default is 30 s).
    timeout = os.environ.get("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "").strip() or "10s"
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise WorkFailed(f"cannot reach the Dask scheduler at {address}: {str(exc).splitlines()[0]}") from None
    return Pool(client.get_executor(pure=False), "cluster", client=client)


def cluster_address(cluster: str | None) -> str | None:
    """--cluster, else DASK_SCHEDULER_ADDRESS, else None (run locally)."""
    address = (cluster or os.environ.get(CLUSTER_ENV) or "").strip()
    if not address:
        return None
    if "://" not in address:
        raise BadInput(f"cluster address {address!r} must look like tcp://host:8786")
    return address


ENGINE_THREAD_PREFIX = "gex-engine"


def threads(n: int) -> Executor:
    """`n` threads of this process (numpy releases the GIL in its loops)."""
    return ThreadPoolExecutor(n, thread_name_prefix=ENGINE_THREAD_PREFIX)


def even_runs(sizes, n: int) -> list[tuple[int, int]]:
    """Index ranges [a, b) cutting `sizes` (work per item, in order) into at most `n` consecutive runs of
    about equal total work: one task per engine thread."""
    cum = list(accumulate(int(x) for x in sizes))
    if n <= 1 or len(cum) < 2:
        return [(0, len(cum))]
    cuts = {min(bisect_left(cum, cum[-1] * k / n) + 1, len(cum)) for k in range(1, n)}  # after the item reaching k/n
    bounds = sorted({0, len(cum), *cuts})
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _init_local(progress_queue, parent_pid: int) -> None:
    global _progress
    _progress = progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent decides and ends us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's clean-up handler is not ours
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    """End this worker as soon as its parent is gone, however the parent ended."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the kernel kills us with the parent
    except (OSError, AttributeError):  # not Linux: the watchdog below does it
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="gex-parent-watch", daemon=True).start()
