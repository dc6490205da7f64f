"""A long window of a pure-computation source, computed in several processes at once.

`compute_in_parts` cuts the sessions into contiguous parts. This process computes the first part (and
writes it, as its bundles are consumed) while forked processes compute the others; each sends its bundles
back as it goes, and a thread here receives them, so a worker never waits for the writer. The bundles
come out in date order. Each part warms up on its own context (chain listings, RSI, the rolling GEX
windows), and a session's rows do not depend on the part it lands in (tests/test_compute_parts.py), so
the rows are those of one process.

Only the synthetic market is cut: a real source's requests share one rate limit and one bar cache.
"""

from __future__ import annotations

import os
import queue
import threading

from gexhistory.compute import compute_sessions
from gexhistory.errors import WorkFailed
from gexhistory.runtime import compute_processes, tune_allocator

MIN_PART_SESSIONS = 500  # below this a second process costs more (start, warm-up, transfer) than it saves
FIRST_SHARE = 0.5  # this process also writes, but the later sessions cost more (daily expiries): equal parts
SEND_EVERY = 64  # sessions per message from a worker


def compute_in_parts(source, symbol: str, todo: list, conv, model_params, chains=None, jobs: int = 1):
    """compute_sessions's bundles, computed in compute_processes() processes when the window is long, the
    source synthetic and the run a single job (with --jobs the symbols already use the cores)."""
    tune_allocator()
    parts = compute_processes() if jobs <= 1 else 1
    parts = min(parts, len(todo) // MIN_PART_SESSIONS)
    if parts <= 1 or chains is not None or not source.is_synthetic or not hasattr(os, "fork"):
        yield from compute_sessions(source, symbol, todo, conv, model_params, chains)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    first = round(len(todo) * FIRST_SHARE * 2 / parts)
    rest = len(todo) - first
    cuts = [0, first] + [first + round(rest * k / (parts - 1)) for k in range(1, parts)]
    pieces = [todo[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    workers = []
    try:
        for piece in pieces[1:]:
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(send, source, symbol, piece, conv, model_params), daemon=True)
            proc.start()
            send.close()
            workers.append((proc, _Inbox(recv)))
        yield from compute_sessions(source, symbol, pieces[0], conv, model_params, threads=1)
        for proc, inbox in workers:
            yield from inbox.bundles()
            proc.join()
    finally:
        for proc, inbox in workers:  # on error, or a writer that stopped early: the rest is not wanted
            if proc.is_alive():
                proc.kill()
            proc.join()
            inbox.close()


class _Inbox:
    """Receives a worker's messages on a thread, as they come, into an unbounded queue."""

    def __init__(self, conn):
        self.conn = conn
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._receive, name="gex-part-inbox", daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        try:
            while True:
                kind, payload = self.conn.recv()
                self.queue.put((kind, payload))
                if kind != "rows":
                    return
        except (EOFError, OSError):  # the worker died without a word (killed)
            self.queue.put(("error", WorkFailed("a computing process ended unexpectedly")))

    def bundles(self):
        while True:
            kind, payload = self.queue.get()
            if kind == "rows":
                yield from payload
            elif kind == "done":
                return
            else:
                raise payload

    def close(self) -> None:
        self.conn.close()
        self.thread.join(timeout=5)


def _worker(send, source, symbol, todo, conv, model_params) -> None:
    """A forked process's part: bundles without the engine's snapshot objects (the writer does not need
    them), sent SEND_EVERY sessions at a time; an error is sent as the error."""
    _die_with_parent()
    try:
        batch = []
        for bundle in compute_sessions(source, symbol, todo, conv, model_params, threads=1):
            bundle.pop("snapshots", None)
            batch.append(bundle)
            if len(batch) == SEND_EVERY:
                send.send(("rows", batch))
                batch = []
        if batch:
            send.send(("rows", batch))
        send.send(("done", None))
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
