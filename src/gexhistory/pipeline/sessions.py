"""One symbol's sessions computed and written: the unit of work of a backfill.

`backfill_task` is what the executor runs (pipeline/parallel.py), in a worker process or on a
cluster node: it opens its own database engine and price source, computes and writes its sessions in
session-atomic batches, closes both and returns its counts. `write_sessions` is the same work on an
engine and source the caller already holds (the parent process's own share).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

from gexhistory.calendar import Session
from gexhistory.pipeline import parallel
from gexhistory.pipeline.runs import BackfillOptions, SymbolResult, is_synthetic_label
from gexhistory.sources.select import select_source
from gexhistory.store import writes
from gexhistory.store.db import open_engine
from gexhistory.store.schema import (
    gamma_daily_summary,
    gamma_history,
    gex_history,
    regime_signals,
)

if TYPE_CHECKING:
    from gexhistory.sources.base import PriceSource

CHAIN_LOOKBACK = dt.timedelta(days=45)  # imported chains this far before the window feed its context sessions
_TABLES = (("gex_history", gex_history), ("gamma_history", gamma_history),
           ("gamma_daily_summary", gamma_daily_summary), ("regime_signals", regime_signals))


def worker_source(opts: BackfillOptions, jobs: int) -> PriceSource:
    """The price source one process uses; a provider's request rate is shared among the jobs."""
    rate = opts.rate
    if jobs > 1:
        if rate is None and opts.source_factory is None:
            from gexhistory.sources.massive import configured_rate  # lazy: the provider's module, only with one

            rate = configured_rate()
        rate = rate / jobs if rate else rate
    if opts.source_factory is not None:
        return opts.source_factory(seed=opts.seed, bars=opts.bars, rate=rate)
    return select_source(opts.source, seed=opts.seed, bars=opts.bars, rate=rate, symbols=opts.symbols)


def backfill_task(opts: BackfillOptions, symbol: str, todo: list[Session], run_id: int, jobs: int) -> SymbolResult:
    """Compute and write `todo` for `symbol` with this process's own engine and source (an executor task)."""
    engine = open_engine(opts.db)
    try:
        source = worker_source(opts, jobs)
        res = SymbolResult(symbol, source.name)
        write_sessions(engine, source, symbol, todo, opts, run_id, res,
                       on_batch=lambda n: parallel.report(symbol, n), threads=None if jobs > 1 else 1)
        return res
    finally:
        engine.dispose()  # no connection outlives the task (a cluster worker lives on)


def write_sessions(engine, source: PriceSource, symbol: str, todo: list[Session], opts: BackfillOptions,
                   run_id: int, res: SymbolResult, on_batch: Callable[[int], None] | None = None,
                   threads: int | None = None) -> None:
    """Compute `todo` (date order) and write it batch by batch, each batch one transaction, adding the
    counts to `res`; `on_batch(n)` after each batch with the sessions it covered. Imported chains
    outrank the modelled one for real sources; synthetic prices never use a real chain."""
    # lazy: numpy and the engine, imported only when there is something to compute (a no-op rerun never is)
    from gexhistory.pipeline.bar_cache import BarCache
    from gexhistory.pipeline.compute import compute_sessions
    from gexhistory.pipeline.chain_store import chain_lookup

    if not todo:
        return
    if not source.is_synthetic and not isinstance(source, BarCache):
        source = BarCache(source, engine)  # reruns read the bars they hold instead of fetching them again
    chains = None if source.is_synthetic else chain_lookup(engine, symbol, todo[0].date - CHAIN_LOOKBACK,
                                                           todo[-1].date)
    bundles = compute_sessions(source, symbol, todo, opts.conventions, opts.model, chains=chains, threads=threads)
    try:
        for lo in range(0, len(todo), opts.batch_sessions):
            batch = todo[lo:lo + opts.batch_sessions]
            _write_batch(engine, source, symbol, batch, [next(bundles) for _ in batch], opts, run_id, res)
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        # Close the computation at once when a write fails: left to the garbage collector, its engine
        # threads live on, and their shutdown may then run inside threading's own locks (a deadlock
        # seen when a collection fell into a later Thread.start).
        bundles.close()
    res.notes = list(dict.fromkeys([*res.notes, *source.notes]))


def _write_batch(engine, source: PriceSource, symbol: str, batch: list[Session], rows: list[dict],
                 opts: BackfillOptions, run_id: int, res: SymbolResult) -> None:
    """One batch of sessions in one transaction, under the symbol's lock: the bars fetched so far, then
    each session's rows replacing whatever the session held (live snapshots excepted)."""
    from gexhistory.pipeline.bar_cache import BarCache  # lazy: see write_sessions

    with engine.begin() as conn:
        writes.lock_symbol(conn, symbol)
        if isinstance(source, BarCache):
            source.flush(conn)  # the bars this run fetched, committed with its first sessions
        batch, rows = _still_todo(conn, symbol, batch, rows, opts, source, res)
        removed = writes.delete_sessions(conn, symbol, [s.date for s in batch])
        live = writes.live_timestamps(conn, symbol, [s.date for s in batch])
        for name, table in _TABLES:
            table_rows = [r for b in rows for r in b[name] if r.get("timestamp") not in live]
            for r in table_rows:
                r["run_id"] = run_id
            writes.insert_rows(conn, table, table_rows)
            c = res.counts[name]
            c.replaced += removed[name]
            c.inserted += len(table_rows) - min(removed[name], len(table_rows))
    res.sessions_written += len(batch)


def _still_todo(conn, symbol: str, batch: list[Session], rows: list[dict], opts: BackfillOptions,
                source: PriceSource, res: SymbolResult) -> tuple[list[Session], list[dict]]:
    """Drop the sessions another run completed since the plan was made (we hold the symbol's lock now).

    Two runs of one window would otherwise both replace each other's sessions: still correct, since
    delete+insert is one transaction, but reported as 'replaced' and against the source precedence.
    """
    if opts.force:
        return batch, rows
    held = writes.complete_sessions_locked(conn, symbol, [s.date for s in batch])
    keep = [k for k, s in enumerate(batch)
            if s.date not in held or (is_synthetic_label(held[s.date].source) and not source.is_synthetic)]
    if len(keep) < len(batch):
        kept = set(keep)
        gone = [held[s.date] for k, s in enumerate(batch) if k not in kept]
        res.add_skipped(len(gone), sum(h.snapshots for h in gone))
    return [batch[k] for k in keep], [rows[k] for k in keep]
