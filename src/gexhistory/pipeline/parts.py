"""A long window of a pure-computation source, computed and written by several processes at once.

`split` cuts the sessions still to do into contiguous parts; backfill.py computes and writes the first
part in this process while a forked process (`Forked`) computes and writes each other part, each through
its own database connection, in the same session-atomic batches. A session's rows do not depend on the
part it lands in (tests/test_compute_parts.py), so the rows are those of one process; a crash leaves
whole sessions, and a rerun completes whatever any part had not committed.

Only the synthetic market is cut: a real source's requests share one rate limit and one bar cache.
"""

from __future__ import annotations

import os
import queue
import threading

from gexhistory.errors import WorkFailed
from gexhistory.runtime import compute_processes

MIN_PART_SESSIONS = 500  # below this a second process costs more (start, warm-up) than it saves


def split(todo: list, source, chains, jobs: int) -> list[list]:
    """The parts to compute: one, unless the window is long, the source synthetic and the run a single
    job (with --jobs the symbols already use the cores). Equal parts: the later sessions cost more
    (daily expiries), this process has the run's set-up; they come out about even."""
    parts = compute_processes() if jobs <= 1 else 1
    parts = min(parts, len(todo) // MIN_PART_SESSIONS)
    if parts <= 1 or chains is not None or not source.is_synthetic or not hasattr(os, "fork"):
        return [todo]
    cuts = [round(len(todo) * k / parts) for k in range(parts + 1)]
    return [todo[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


class Forked:
    """fn(send, *args) in a forked process; what it sends with send(kind, payload) arrives here on a
    thread, in order, so the worker never waits for this process. An exception in fn arrives as
    ("error", exc); a worker that dies without a word, as a WorkFailed."""

    def __init__(self, fn, *args):
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_run, args=(send, fn, args), daemon=True)
        self.proc.start()
        send.close()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._receive, name="gex-part-inbox", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        try:
            while True:
                kind, payload = self._recv.recv()
                self._queue.put((kind, payload))
                if kind in ("done", "error"):
                    return
        except (EOFError, OSError):
            self._queue.put(("error", WorkFailed("a computing process ended unexpectedly")))

    def poll(self) -> list[tuple]:
        """Messages that arrived so far, without waiting."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def next(self) -> tuple:
        return self._queue.get()

    def close(self) -> None:
        """End the worker if it still runs (an error, or an interrupted run) and release its pipe."""
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self._recv.close()
        self._thread.join(timeout=5)


def _run(send, fn, args) -> None:
    import signal

    # Ctrl-C reaches the whole process group: the parent records the interruption and ends this worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    try:
        fn(lambda kind, payload: send.send((kind, payload)), *args)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent, which reports it
        try:
            send.send(("error", exc))
        except Exception:  # noqa: BLE001 - an error that does not pickle: its message then
            send.send(("error", WorkFailed(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)))
    finally:
        send.close()
        os._exit(0)


def _die_with_parent() -> None:
    """A forked worker ends with the process that started it (Linux), not after its part."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl: do not compute for nobody
            os._exit(1)
    except Exception:  # noqa: BLE001 - not Linux: the worker ends when its pipe closes
        pass
