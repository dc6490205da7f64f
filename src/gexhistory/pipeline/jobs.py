"""Running the backfill's symbols one after another or in parallel worker processes.

Each symbol is a unit of work that either completes or fails on its own: a failure (a source error,
a database error) is recorded on that symbol's result and the other symbols go on, keeping every batch
they committed. With jobs > 1 the symbols run in 'spawn' worker processes (no forked database
connections or threads), each opening its own engine and source and writing its own batches:

- SQLite: every batch is one BEGIN IMMEDIATE transaction, so writers queue on the database lock
  (busy timeout 30 s) while the computation, which dominates a batch, runs in parallel. Sending rows to
  the parent instead would pickle every row across a pipe and still write them one batch at a time.
- PostgreSQL: writers of different symbols run concurrently; writes.lock_symbol serialises writers of
  one symbol across processes and runs.

Workers report progress as (symbol, done, total) on a queue; the parent feeds them to one display.
"""

from __future__ import annotations

import os
import queue as queue_mod
from typing import TYPE_CHECKING, Callable

from gexhistory.errors import BadInput, GexHistoryError
from gexhistory.pipeline.runs import SymbolResult, is_synthetic_label

if TYPE_CHECKING:  # pragma: no cover
    from gexhistory.pipeline.runs import BackfillOptions, ProgressFn
    from gexhistory.calendar import Session

MAX_JOBS = 64


def check_jobs(jobs: int, n_symbols: int) -> int:
    """The number of worker processes to use: never more than symbols; bad values are bad input."""
    if not isinstance(jobs, int) or jobs < 1 or jobs > MAX_JOBS:
        raise BadInput(f"--jobs must be between 1 and {MAX_JOBS}, got {jobs}")
    return max(1, min(jobs, n_symbols))


def failure_message(exc: BaseException) -> str:
    """One line that says why a symbol failed (the first line of the error, type when empty)."""
    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps driver errors
    text = str(orig).strip()
    line = text.splitlines()[0] if text else type(orig).__name__
    return line if isinstance(exc, GexHistoryError) else f"{type(orig).__name__}: {line}"


def run_symbols(engine, source, opts: "BackfillOptions", window: list["Session"], run_id: int, jobs: int,
                progress: "ProgressFn | None", serial_worker: Callable, task: tuple) -> list["SymbolResult"]:
    """Results for opts.symbols in their order; a failed symbol's result carries `error`.

    `serial_worker(symbol, progress)` runs one symbol in this process (jobs == 1)."""
    reraise = len(opts.symbols) == 1
    if jobs <= 1 or len(opts.symbols) <= 1:
        return [_guarded(serial_worker, symbol, opts, len(window), progress, reraise) for symbol in opts.symbols]
    # Symbols with nothing to do are settled here: a no-op rerun starts no worker process.
    idle = [s for s in opts.symbols if _nothing_to_do(engine, source, s, window, opts)]
    results = {s: _guarded(serial_worker, s, opts, len(window), progress, reraise) for s in idle}
    busy = [s for s in opts.symbols if s not in results]
    if busy:
        results.update(_run_parallel(opts, busy, window, run_id, min(jobs, len(busy)), progress, task))
    return [results[s] for s in opts.symbols]


def _nothing_to_do(engine, source, symbol: str, window, opts) -> bool:
    from gexhistory.store import writes

    if not window:
        return True
    if opts.force:
        return False
    try:
        held = writes.complete_sessions(engine, symbol, window[0].date, window[-1].date)
    except Exception:  # let the worker meet (and report) the error
        return False
    return all(s.date in held and not (is_synthetic_label(held[s.date]) and not source.is_synthetic)
               for s in window)


def _guarded(worker: Callable, symbol: str, opts: "BackfillOptions", n_window: int, progress,
             reraise: bool) -> "SymbolResult":
    written = {"done": 0, "total": 0}

    def tracked(s: str, done: int, total: int) -> None:
        written.update(done=done, total=total)
        if progress:
            progress(s, done, total)

    try:
        return worker(symbol, tracked)
    except Exception as exc:  # one symbol's failure must not end the others' work
        if reraise:
            raise  # a single-symbol run keeps the plain error and its exit code
        res = SymbolResult(symbol, opts.source, sessions_in_window=n_window, sessions_written=written["done"])
        res.error = failure_message(exc)
        return res


def _run_parallel(opts, symbols: list[str], window, run_id, jobs, progress, task) -> dict:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    results: dict[str, object] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(messages, opts, jobs, task)) as pool:
        futures = {pool.submit(_work, symbol, window, run_id): symbol for symbol in symbols}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.1)
                _drain(messages, progress)
                for fut in done:
                    symbol = futures[fut]
                    try:
                        results[symbol] = fut.result()
                    except Exception as exc:  # the worker process itself died
                        res = SymbolResult(symbol, opts.source)
                        res.error = failure_message(exc)
                        results[symbol] = res
        except BaseException:
            # Interrupted: stop the workers now. Their open transaction dies with them (rolled back by
            # SQLite's journal or PostgreSQL's lost connection); every committed batch stays.
            for fut in pending:
                fut.cancel()
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    _drain(messages, progress)
    return results


def _drain(messages, progress) -> None:
    while True:
        try:
            msg = messages.get_nowait()
        except queue_mod.Empty:
            return
        if progress:
            progress(*msg)


# Worker process state: one engine and one source per process, reused for every symbol it runs.
_W: dict = {}


def _init_worker(messages, opts, jobs: int, task: tuple) -> None:
    import signal

    # Ctrl-C goes to the whole process group: the parent decides, workers must not print tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _W.update(messages=messages, opts=opts, jobs=jobs, task=task, pid=os.getpid())


def _work(symbol: str, window, run_id: int):
    from gexhistory.store.db import open_engine

    worker_source, backfill_symbol = _W["task"]

    opts = _W["opts"]
    messages = _W["messages"]

    def worker(sym, progress):
        if "engine" not in _W:
            _W["engine"] = open_engine(opts.db)
            _W["source"] = worker_source(opts, _W["jobs"])
        return backfill_symbol(_W["engine"], _W["source"], sym, window, opts, run_id, progress)

    return _guarded(worker, symbol, opts, len(window), lambda s, d, t: messages.put((s, d, t)), reraise=False)
