"""The backfill: plan -> fetch -> compute -> write -> report, one session-atomic batch at a time.

`run_backfill` is the library call behind `gexhistory backfill`, the guide's
`backfill_historical_data.py` and `gx.backfill`. It reads top to bottom:

1. check the options (bad input is found before anything is written), record the run;
2. plan: per symbol, the sessions of the window still to do (complete ones are skipped, `force`
   redoes them, a real source replaces synthetic sessions, a synthetic one never replaces a real
   imported chain);
3. compute and write each symbol's sessions (pipeline/sessions.py): here, or as tasks on an executor
   (pipeline/parallel.py): one task per symbol with --jobs N or --cluster, and a long synthetic
   window cut in two so both cores work;
4. settle the signals' outcomes and confidence from the stored closes, and record how the run ended.

A crash loses at most the open batch: a session's rows in every table are committed together, so a
rerun resumes exactly where the last commit ended.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gexhistory.calendar import ET, TZ_NAME, Session, format_ts, sessions_between
from gexhistory.config import database_url
from gexhistory.errors import BadInput
from gexhistory.pipeline import parallel
from gexhistory.pipeline import symbols as guard
from gexhistory.pipeline.outcomes import settle_signals
from gexhistory.pipeline.runs import (
    BackfillOptions,
    BackfillResult,
    ProgressFn,
    SymbolResult,
    failure_message,
    is_synthetic_label,
    versions,
)
from gexhistory.pipeline.sessions import backfill_task, worker_source, write_sessions
from gexhistory.runtime import compute_processes, engine_threads
from gexhistory.sources.select import choose_source, source_label
from gexhistory.store import writes
from gexhistory.store.db import init_schema, open_engine

if TYPE_CHECKING:
    from gexhistory.sources.base import PriceSource

MAX_JOBS = 64
MIN_PART_SESSIONS = 500  # below this a second process costs more (start, warm-up) than it saves
POLL_SECONDS = 0.1  # how often progress from workers is read while waiting for them
SYNTHETIC_NOTE = ("SYNTHETIC DATA: prices come from the seeded synthetic market, not a real feed; "
                  "every row is labelled data_source='synthetic'.")


@dataclass
class SymbolPlan:
    """What a run has to do for one symbol: the sessions to compute, and what it leaves as stored."""

    symbol: str
    todo: list[Session]
    skipped_sessions: int
    skipped_snapshots: int


def run_backfill(opts: BackfillOptions, progress: ProgressFn | None = None,
                 notice: Callable[[str], None] | None = None) -> BackfillResult:
    """Backfill `opts.symbols` over [opts.start, opts.end]; see the module docstring.

    `notice` receives, before any session is computed, what the user must know before the work: the
    SYNTHETIC DATA banner (also in the result's notes) and a line for each symbol the database has
    never held (the result's `new_symbols`).
    Raises BadInput (nothing written) or WorkFailed (committed batches stay; a rerun completes the
    window). With several symbols, one symbol's failure is reported on its result and the others go on.
    """
    t0 = time.perf_counter()
    cluster = _check(opts)
    window = sessions_between(opts.start, opts.end)
    source = _Source(opts)
    if source.is_synthetic:  # a typo would become invented prices: refused before the database is touched
        guard.refuse_unlisted(opts.symbols, opts.db)
    source.check_covers(opts)  # a bars file that cannot price the window changes nothing, not even the run log
    engine = open_engine(opts.db)
    init_schema(engine)
    run_id = writes.start_run(engine, "backfill", opts.symbols, opts.start, opts.end, source.name,
                              _parameters(opts, source.is_synthetic), versions(), format_ts(dt.datetime.now(ET)))
    result = BackfillResult(run_id, opts.start, opts.end, source.name, source.is_synthetic, [])
    try:
        if source.is_synthetic:
            result.notes.append(SYNTHETIC_NOTE)
            result.new_symbols = guard.new_symbols(engine, opts.symbols)
            if notice:
                for note in [SYNTHETIC_NOTE, *(guard.new_symbol_note(s, engine) for s in result.new_symbols)]:
                    notice(note)
        result.symbols = _run_symbols(engine, source, window, opts, run_id, cluster, progress)
        for symbol in opts.symbols:
            filled, pending = settle_signals(engine, symbol)
            result.outcomes_filled += filled
            result.outcomes_pending += pending
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


def _check(opts: BackfillOptions) -> str | None:
    """Bad options are bad input before anything is written; returns the cluster address, if any."""
    if opts.end < opts.start:
        raise BadInput(f"end date {opts.end} is before start date {opts.start}")
    if not isinstance(opts.jobs, int) or not 1 <= opts.jobs <= MAX_JOBS:
        raise BadInput(f"--jobs must be between 1 and {MAX_JOBS}, got {opts.jobs}")
    engine_threads(), compute_processes()  # a bad GEXHISTORY_* setting
    cluster = parallel.cluster_address(opts.cluster)
    if cluster and database_url(opts.db).startswith("sqlite"):
        raise BadInput("a Dask cluster writes through PostgreSQL (--db postgresql://...): an SQLite file "
                       "lives on one machine and its workers could not all reach it")
    return cluster


class _Source:
    """The run's price source, checked before anything is written. The synthetic market is opened
    only when a session is to be computed, so a rerun with nothing to do imports no price code (nor
    numpy); a provider (its key, its URL) and a CSV file (every row) are checked, so opened, at once."""

    def __init__(self, opts: BackfillOptions):
        self.opts = opts
        self._source: PriceSource | None = None
        if opts.source_factory is not None:
            self._source = opts.source_factory(seed=opts.seed, bars=opts.bars, rate=opts.rate)
        else:
            kind = choose_source(opts.source, opts.bars)
            if kind != "synthetic":
                self._source = worker_source(opts, 1)
            self.name, self.is_synthetic = source_label(kind, opts.bars), kind == "synthetic"
        if self._source is not None:
            self.name, self.is_synthetic = self._source.name, self._source.is_synthetic

    def check_covers(self, opts: BackfillOptions) -> None:
        if self._source is None or not opts.symbols:  # the synthetic market prices any window
            return
        from gexhistory.pipeline.compute import bars_start  # lazy: numpy, which a file source loads anyway

        for symbol in opts.symbols:
            self._source.check_covers(symbol, bars_start(opts.start), opts.start, opts.end)

    def open(self) -> PriceSource:
        if self._source is None:
            self._source = worker_source(self.opts, 1)
        return self._source


def _parameters(opts: BackfillOptions, synthetic: bool) -> dict:
    return {"conventions": opts.conventions.as_dict(), "chain_model": opts.model.as_dict(),
            "seed": opts.seed if synthetic else None, "force": opts.force,
            "snapshot_times": {"regular": "09:30,12:30,15:00,16:00", "early_close": "09:30,11:00,12:00,13:00"},
            "timezone": TZ_NAME}


def plan_symbol(engine, source: PriceSource | _Source, symbol: str, window: list[Session],
                opts: BackfillOptions) -> SymbolPlan:
    """The sessions of `window` still to compute for `symbol`, from what is stored now."""
    if not window:
        return SymbolPlan(symbol, [], 0, 0)
    held = writes.complete_sessions(engine, symbol, window[0].date, window[-1].date)
    todo = [s for s in window if s.date not in held or opts.force
            or (is_synthetic_label(held[s.date].source) and not source.is_synthetic)]
    if todo and source.is_synthetic:  # a real imported chain is never recomputed at synthetic prices
        imported = writes.imported_chain_dates(engine, symbol, window[0].date, window[-1].date)
        todo = [s for s in todo if not (s.date in held and s.date in imported)]
    kept = {s.date for s in todo}
    left = [held[s.date] for s in window if s.date not in kept]
    return SymbolPlan(symbol, todo, len(left), sum(h.snapshots for h in left))


def _run_symbols(engine, source: _Source, window: list[Session], opts: BackfillOptions, run_id: int,
                 cluster: str | None, progress: ProgressFn | None) -> list[SymbolResult]:
    """Every symbol's result, in opts.symbols order. A single-symbol run raises its error; with several,
    a failed symbol carries `error` and the others keep going."""
    single = len(opts.symbols) == 1
    results: dict[str, SymbolResult] = {}
    plans: list[SymbolPlan] = []
    for symbol in opts.symbols:
        res = results[symbol] = SymbolResult(symbol, source.name, sessions_in_window=len(window))
        try:
            plan = plan_symbol(engine, source, symbol, window, opts)
        except Exception as exc:
            _fail(res, exc, single)
            continue
        res.add_skipped(plan.skipped_sessions, plan.skipped_snapshots)
        if progress:
            progress(symbol, 0, len(plan.todo))
        if plan.todo:
            plans.append(plan)
    busy = len(plans)
    if cluster or (opts.jobs > 1 and busy > 1):
        pool = parallel.cluster_pool(cluster) if cluster else parallel.local_pool(min(opts.jobs, busy))
        task_opts = replace(opts, db=database_url(opts.db))  # a worker's environment may name another database
        jobs = busy if cluster else min(opts.jobs, busy)
        parts = {pool.submit(backfill_task, task_opts, p.symbol, p.todo, run_id, jobs): (p.symbol, p) for p in plans}
        _collect(pool, parts, results, progress, single)
    else:
        for plan in plans:
            try:
                _run_here(engine, source.open(), plan, opts, run_id, results[plan.symbol], progress)
            except Exception as exc:
                _fail(results[plan.symbol], exc, single)
    return [results[s] for s in opts.symbols]


def split(todo: list[Session], source: PriceSource, jobs: int) -> list[list[Session]]:
    """The parts one symbol's sessions are computed in: two for a long window of the synthetic market
    (pure computation: no shared rate limit or bar cache) when the symbols do not already use the
    cores, else one. Equal halves: the later sessions cost more (daily expiries) and this process,
    which takes the first, also planned the run; they come out about even."""
    n = min(compute_processes() if jobs <= 1 else 1, len(todo) // MIN_PART_SESSIONS)
    if n <= 1 or not source.is_synthetic:
        return [todo]
    cuts = [round(len(todo) * k / n) for k in range(n + 1)]
    return [todo[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def _run_here(engine, source: PriceSource, plan: SymbolPlan, opts: BackfillOptions, run_id: int,
              res: SymbolResult, progress: ProgressFn | None) -> None:
    """One symbol in this process, its later part (if split) in a worker process at the same time."""
    first, *rest = split(plan.todo, source, opts.jobs)
    done = {"n": 0}

    def advance(n: int) -> None:
        done["n"] += n
        if progress:
            progress(plan.symbol, done["n"], len(plan.todo))

    pool = parallel.local_pool(len(rest)) if rest else None
    try:
        futures = [pool.submit(backfill_task, opts, plan.symbol, part, run_id, 1) for part in rest] if pool else []

        def on_batch(n: int) -> None:
            advance(n)
            for _, m in pool.progress() if pool else []:
                advance(m)

        write_sessions(engine, source, plan.symbol, first, opts, run_id, res, on_batch=on_batch,
                       threads=1 if pool else None)
        pending = set(futures)
        while pending:
            _, pending = pool.wait(pending, POLL_SECONDS)
            for _, m in pool.progress():
                advance(m)
        for f in futures:
            res.merge(parallel.result_of(f))
        # A worker's last message may still be in the queue's pipe when its future completes: the parts
        # are done, so the display is told so rather than left one batch short.
        if done["n"] < len(plan.todo):
            advance(len(plan.todo) - done["n"])
    except BaseException:
        if pool is not None:
            pool.close(cancel=True)
        raise
    if pool is not None:
        pool.close()


def _collect(pool: parallel.Pool, parts: dict, results: dict[str, SymbolResult], progress: ProgressFn | None,
             single: bool) -> None:
    """Wait for the symbols' tasks, feeding their progress to `progress`, and merge their counts."""
    done: dict[str, int] = {}
    ended: set[str] = set()  # symbols whose task has ended: their total was reported then

    def advance(symbol: str, n: int) -> None:
        if symbol in ended or n <= 0:  # a message still in flight when the task ended is already counted
            return
        done[symbol] = done.get(symbol, 0) + n
        if progress:
            progress(symbol, done[symbol], len(parts_by_symbol[symbol].todo))

    parts_by_symbol = {symbol: plan for symbol, plan in parts.values()}
    pending = set(parts)
    try:
        while pending:
            finished, pending = pool.wait(pending, POLL_SECONDS)
            for symbol, n in pool.progress():
                advance(symbol, n)
            for f in finished:
                symbol, plan = parts[f]
                try:
                    part = parallel.result_of(f)
                except Exception as exc:
                    _fail(results[symbol], exc, single)
                    continue
                results[symbol].merge(part)
                # A cluster has no progress queue (a task reports when it ends), and a local worker's
                # last message may still be in the queue's pipe when its future completes: either way
                # the task is done, so its total is reported now and later messages are ignored.
                advance(symbol, len(plan.todo) - done.get(symbol, 0))
                ended.add(symbol)
    except BaseException:
        pool.close(cancel=True)
        raise
    pool.close()


def _fail(res: SymbolResult, exc: Exception, single: bool) -> None:
    """Record why a symbol failed (its committed batches stay); a single-symbol run re-raises instead,
    so the plain error and its exit code reach the caller."""
    if single:
        raise exc
    res.error = failure_message(exc)
