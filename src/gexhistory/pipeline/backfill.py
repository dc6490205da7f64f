"""The backfill pipeline: sources -> engine -> store, one session-atomic batch at a time.

`run_backfill` is the library call behind `gexhistory backfill` and the guide's
`backfill_historical_data.py`. Completed sessions are skipped (a rerun writes nothing), `force`
replaces the window atomically per batch, and a crash loses at most the open batch: a session's rows
in every table are committed together, so a rerun resumes exactly where the last commit ended.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from gexhistory.calendar import ET, TZ_NAME, Session, format_ts, sessions_between
from gexhistory.errors import BadInput
from gexhistory.pipeline.outcomes import fill_outcomes, refresh_confidence
from gexhistory.pipeline.runs import (BackfillOptions, BackfillResult, ProgressFn, SymbolResult,
                                      is_synthetic_label, versions)
from gexhistory.store import writes
from gexhistory.store.db import init_schema, open_engine
from gexhistory.store.schema import gamma_daily_summary, gamma_history, gex_history, regime_signals

# numpy and the engine are imported by compute.py, on first use: a rerun with nothing to do records
# its run and exits without them.
if TYPE_CHECKING:
    from gexhistory.sources.base import PriceSource

def select_source(name: str, *, seed: int, bars: str | None = None, rate: float | None = None,
                  symbols: list[str] | None = None) -> PriceSource:
    """auto = the Massive/Polygon source when a key is configured, else the labelled synthetic market."""
    from gexhistory.sources import select

    return select.select_source(name, seed=seed, bars=bars, rate=rate, symbols=symbols)


def _through_bar_cache(source: PriceSource, engine) -> PriceSource:
    """Real sources answer through price_bars (reruns fetch nothing they hold); synthetic bars are not stored."""
    from gexhistory.pipeline.bar_cache import BarCache

    if source.is_synthetic or isinstance(source, BarCache):
        return source
    return BarCache(source, engine)


def _store_fetched_bars(conn, source: PriceSource) -> None:
    flush = getattr(source, "flush", None)
    if flush is not None:
        flush(conn)


def run_backfill(opts: BackfillOptions, progress: ProgressFn | None = None) -> BackfillResult:
    t0 = time.perf_counter()
    if opts.end < opts.start:
        raise BadInput(f"end date {opts.end} is before start date {opts.start}")
    window = sessions_between(opts.start, opts.end)
    from gexhistory.pipeline.jobs import check_jobs

    jobs = check_jobs(opts.jobs, len(opts.symbols))
    from gexhistory.runtime import compute_processes, engine_threads

    engine_threads(), compute_processes()  # a bad setting is bad input before anything is written
    source = worker_source(opts, 1)
    engine = open_engine(opts.db)
    init_schema(engine)
    params = {"conventions": opts.conventions.as_dict(), "chain_model": opts.model.as_dict(),
              "seed": opts.seed if source.is_synthetic else None, "force": opts.force,
              "snapshot_times": {"regular": "09:30,12:30,15:00,16:00", "early_close": "09:30,11:00,12:00,13:00"},
              "timezone": TZ_NAME}
    run_id = writes.start_run(engine, "backfill", opts.symbols, opts.start, opts.end, source.name, params,
                              versions(), format_ts(dt.datetime.now(ET)))
    result = BackfillResult(run_id, opts.start, opts.end, source.name, source.is_synthetic, [])
    if source.is_synthetic:
        result.notes.append("SYNTHETIC DATA: prices come from the seeded synthetic market, not a real feed; "
                            "every row is labelled data_source='synthetic'.")
    try:
        result.symbols = _run_symbols(engine, source, window, opts, run_id, jobs, progress)
        for symbol in opts.symbols:
            filled, pending = fill_outcomes(engine, symbol)
            result.outcomes_filled += filled
            result.outcomes_pending += pending
            refresh_confidence(engine, symbol)
    except BaseException as exc:
        result.elapsed = time.perf_counter() - t0
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        try:  # best effort: the database itself may be what failed; the original error matters more
            writes.finish_run(engine, run_id, status, result.as_dict()["totals"], format_ts(dt.datetime.now(ET)),
                              str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except Exception:  # noqa: BLE001
            pass
        engine.dispose()
        raise
    result.notes.extend(dict.fromkeys(n for s in result.symbols for n in s.notes if n not in result.notes))
    result.elapsed = time.perf_counter() - t0
    failed = "; ".join(f"{s.symbol}: {s.error}" for s in result.failed) or None
    writes.finish_run(engine, run_id, "failed" if failed else "ok", result.as_dict()["totals"],
                      format_ts(dt.datetime.now(ET)), failed)
    engine.dispose()
    return result


def worker_source(opts: BackfillOptions, jobs: int) -> PriceSource:
    """The price source one process uses; a provider's request rate is shared among the jobs."""
    rate = opts.rate
    if jobs > 1:
        if rate is None and opts.source_factory is None:
            from gexhistory.sources.massive import DEFAULT_RATE_PER_MIN, _env_float

            rate = _env_float("MASSIVE_RATE_PER_MIN", DEFAULT_RATE_PER_MIN, 1e-3, 1e6)
        rate = rate / jobs if rate else rate
    if opts.source_factory is not None:
        return opts.source_factory(seed=opts.seed, bars=opts.bars, rate=rate)
    return select_source(opts.source, seed=opts.seed, bars=opts.bars, rate=rate, symbols=opts.symbols)


def _run_symbols(engine, source: PriceSource, window: list[Session], opts: BackfillOptions, run_id: int,
                 jobs: int, progress: ProgressFn | None) -> list[SymbolResult]:
    from gexhistory.pipeline.jobs import run_symbols

    return run_symbols(engine, source, opts, window, run_id, jobs, progress,
                       lambda symbol, prog: _backfill_symbol(engine, source, symbol, window, opts, run_id, prog),
                       (worker_source, _backfill_symbol))


def _backfill_symbol(engine, source: PriceSource, symbol: str, window: list[Session], opts: BackfillOptions,
                     run_id: int, progress: ProgressFn | None) -> SymbolResult:
    res = SymbolResult(symbol, source.name, sessions_in_window=len(window))
    if not window:
        return res
    existing = writes.complete_sessions(engine, symbol, window[0].date, window[-1].date)
    todo = [s for s in window if s.date not in existing or opts.force
            or (is_synthetic_label(existing[s.date]) and not source.is_synthetic)]
    chains = None
    if todo:  # imported chains and the bar cache matter only for sessions still to compute
        source = _through_bar_cache(source, engine)
        chains = _imported_chains(engine, symbol, window[0].date, window[-1].date)
        if source.is_synthetic:  # a real imported chain is never recomputed at synthetic prices, even with --force
            todo = [s for s in todo if not (s.date in existing and s.date in chains.dates)]
    res.sessions_skipped = len(window) - len(todo)
    res.counts["gamma_daily_summary"].skipped = res.sessions_skipped
    res.counts["gex_history"].skipped = res.counts["gamma_history"].skipped = 4 * res.sessions_skipped
    if progress:
        progress(symbol, 0, len(todo))
    if not todo:
        return res

    from gexhistory.pipeline.compute import compute_sessions
    from gexhistory.pipeline.parts import Forked, split
    from gexhistory.runtime import tune_allocator

    tune_allocator()
    parts = split(todo, source, None if source.is_synthetic else chains, opts.jobs)
    workers = [Forked(_write_part, symbol, part, opts, run_id, source) for part in parts[1:]]
    totals = {"done": 0, "total": len(todo)}

    def report(n: int) -> None:  # sessions written here or by a worker
        totals["done"] += n
        if progress:
            progress(symbol, totals["done"], totals["total"])

    finished: set[int] = set()

    def absorb(k: int, kind, payload) -> None:
        if kind == "progress":
            report(payload)
        elif kind == "done":
            _merge(res, payload)
            finished.add(k)
        else:
            raise payload

    try:
        bundles = compute_sessions(source, symbol, parts[0], opts.conventions, opts.model,
                                   chains=None if source.is_synthetic else chains,
                                   threads=1 if workers else None)
        for n in _write_batches(engine, symbol, parts[0], bundles, opts, run_id, source, res):
            report(n)
            for k, w in enumerate(workers):
                for message in w.poll():
                    absorb(k, *message)
        for k, w in enumerate(workers):
            while k not in finished:
                absorb(k, *w.next())
    finally:
        for w in workers:
            w.close()
    res.notes = list(getattr(source, "notes", []))
    return res


def _write_batches(engine, symbol: str, todo: list[Session], bundles, opts: BackfillOptions, run_id: int,
                   source: PriceSource, res: SymbolResult):
    """Write `todo`'s bundles (in order) batch by batch, each batch one transaction; yields the number
    of sessions after each batch."""
    for lo in range(0, len(todo), opts.batch_sessions):
        batch = todo[lo:lo + opts.batch_sessions]
        rows = [next(bundles) for _ in batch]
        seen = len(batch)
        with engine.begin() as conn:
            writes.lock_symbol(conn, symbol)
            _store_fetched_bars(conn, source)
            batch, rows = _still_todo(conn, symbol, batch, rows, opts, source, res)
            removed = writes.delete_sessions(conn, symbol, [s.date for s in batch])
            live = writes.live_timestamps(conn, symbol, [s.date for s in batch])
            for name, table in (("gex_history", gex_history), ("gamma_history", gamma_history),
                                ("gamma_daily_summary", gamma_daily_summary), ("regime_signals", regime_signals)):
                table_rows = [r for b in rows for r in b[name] if r.get("timestamp") not in live]
                for r in table_rows:
                    r["run_id"] = run_id
                writes.insert_rows(conn, table, table_rows)
                c = res.counts[name]
                c.replaced += removed[name]
                c.inserted += len(table_rows) - min(removed[name], len(table_rows))
        res.sessions_written += len(batch)
        yield seen


def _write_part(send, symbol: str, todo: list[Session], opts: BackfillOptions, run_id: int,
                source: PriceSource) -> None:
    """A forked worker's part: computed and written through its own connection (never the parent's),
    reporting sessions as their batches commit and its counts at the end."""
    from gexhistory.pipeline.compute import compute_sessions

    engine = open_engine(opts.db)
    try:
        part = SymbolResult(symbol, source.name)
        bundles = compute_sessions(source, symbol, todo, opts.conventions, opts.model, threads=1)
        for n in _write_batches(engine, symbol, todo, bundles, opts, run_id, source, part):
            send("progress", n)
        send("done", {"written": part.sessions_written, "skipped": part.sessions_skipped,
                      "counts": {t: c.__dict__ for t, c in part.counts.items()}})
    finally:
        engine.dispose()


def _merge(res: SymbolResult, part: dict) -> None:
    res.sessions_written += part["written"]
    res.sessions_skipped += part["skipped"]
    for t, c in part["counts"].items():
        mine = res.counts[t]
        mine.inserted += c["inserted"]
        mine.replaced += c["replaced"]
        mine.skipped += c["skipped"]


def _imported_chains(engine, symbol: str, start: dt.date, end: dt.date):
    """date -> stored imported chain (or None): imported chains outrank the modelled one."""
    from gexhistory.pipeline.import_chains import chain_lookup

    return chain_lookup(engine, symbol, start - dt.timedelta(days=45), end)


def _still_todo(conn, symbol: str, batch: list[Session], rows: list[dict], opts: BackfillOptions,
                source: PriceSource, res: SymbolResult) -> tuple[list[Session], list[dict]]:
    """Drop the sessions another run completed since our first read (we hold the symbol's lock now).

    Two runs of one window would otherwise both replace each other's sessions: still correct, since
    delete+insert is one transaction, but reported as 'replaced' and against the source precedence.
    """
    if opts.force:
        return batch, rows
    held = writes.complete_sessions_locked(conn, symbol, [s.date for s in batch])
    keep = [k for k, s in enumerate(batch)
            if s.date not in held or (is_synthetic_label(held[s.date]) and not source.is_synthetic)]
    gone = len(batch) - len(keep)
    if gone:
        res.sessions_skipped += gone
        res.counts["gamma_daily_summary"].skipped += gone
        res.counts["gex_history"].skipped += 4 * gone
        res.counts["gamma_history"].skipped += 4 * gone
    return [batch[k] for k in keep], [rows[k] for k in keep]
