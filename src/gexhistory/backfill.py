"""The backfill pipeline: sources -> engine -> store, one session-atomic batch at a time.

`run_backfill` is the library call behind `gexhistory backfill` and the guide's
`backfill_historical_data.py`. Completed sessions are skipped (a rerun writes nothing), `force`
replaces the window atomically per batch, and a crash loses at most the open batch: a session's rows
in every table are committed together, so a rerun resumes exactly where the last commit ended.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from gexhistory import __version__
from gexhistory.calendar import ET, Session, format_ts, sessions_before, sessions_between
from gexhistory.engine.params import Conventions, ModelParams
from gexhistory.errors import BadInput, WorkFailed
from gexhistory.store import writes
from gexhistory.store.db import init_schema, open_engine
from gexhistory.store.schema import gamma_daily_summary, gamma_history, gex_history, regime_signals

# numpy and the engine are imported by the functions that compute: a rerun with nothing to do
# records its run and exits without them.
if TYPE_CHECKING:
    import numpy as np

    from gexhistory.engine.chain import OptionChain
    from gexhistory.engine.exposure import GexSnapshot
    from gexhistory.sources.base import DailyBars, PriceSource

TABLES = ("gex_history", "gamma_history", "gamma_daily_summary", "regime_signals")
TZ_NAME = "America/New_York"

# A real source outranks synthetic data: without --force a real run replaces synthetic sessions,
# and a synthetic run never overwrites real ones.
def _is_synthetic_label(label: str) -> bool:
    return label == "synthetic"


@dataclass
class BackfillOptions:
    symbols: list[str]
    start: dt.date
    end: dt.date
    source: str = "auto"
    seed: int = 42
    force: bool = False
    db: str | None = None
    bars: str | None = None
    rate: float | None = None
    batch_sessions: int = 250
    conventions: Conventions = field(default_factory=Conventions)
    model: ModelParams = field(default_factory=ModelParams)
    jobs: int = 1  # worker processes for the symbols (gexhistory.jobs)
    # A picklable callable (seed, bars, rate) -> PriceSource used instead of `source` (embedding, tests).
    source_factory: Callable[..., PriceSource] | None = None


@dataclass
class TableCount:
    inserted: int = 0
    skipped: int = 0
    replaced: int = 0


@dataclass
class SymbolResult:
    symbol: str
    data_source: str
    sessions_in_window: int = 0
    sessions_written: int = 0
    sessions_skipped: int = 0
    counts: dict[str, TableCount] = field(default_factory=lambda: {t: TableCount() for t in TABLES})
    error: str | None = None  # why this symbol failed; its committed batches stay
    notes: list[str] = field(default_factory=list)  # what the price source had to say (fall-backs, plan limits)


@dataclass
class BackfillResult:
    run_id: int
    start: dt.date
    end: dt.date
    data_source: str
    synthetic: bool
    symbols: list[SymbolResult]
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)
    outcomes_filled: int = 0  # stored signals whose outcomes became (more) known in this run
    outcomes_pending: int = 0  # signals still waiting for their 10-session horizon

    @property
    def failed(self) -> list[SymbolResult]:
        return [s for s in self.symbols if s.error]

    def totals(self) -> dict[str, TableCount]:
        out = {t: TableCount() for t in TABLES}
        for s in self.symbols:
            for t, c in s.counts.items():
                out[t].inserted += c.inserted
                out[t].skipped += c.skipped
                out[t].replaced += c.replaced
        return out

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "data_source": self.data_source,
            "synthetic": self.synthetic,
            "elapsed_seconds": round(self.elapsed, 3),
            "notes": self.notes,
            "outcomes_filled": self.outcomes_filled,
            "outcomes_pending": self.outcomes_pending,
            "symbols": [
                {
                    "symbol": s.symbol,
                    "sessions_in_window": s.sessions_in_window,
                    "sessions_written": s.sessions_written,
                    "sessions_skipped": s.sessions_skipped,
                    "tables": {t: c.__dict__ for t, c in s.counts.items()},
                    "error": s.error,
                }
                for s in self.symbols
            ],
            "totals": {t: c.__dict__ for t, c in self.totals().items()},
            "failed": [s.symbol for s in self.failed],
        }


ProgressFn = Callable[[str, int, int], None]  # (symbol, sessions done, sessions to do)


def select_source(name: str, *, seed: int, bars: str | None = None, rate: float | None = None,
                  symbols: list[str] | None = None) -> PriceSource:
    """auto = the Massive/Polygon source when a key is configured, else the labelled synthetic market."""
    from gexhistory.sources import select

    return select.select_source(name, seed=seed, bars=bars, rate=rate, symbols=symbols)


def _through_bar_cache(source: PriceSource, engine) -> PriceSource:
    """Real sources answer through price_bars (reruns fetch nothing they hold); synthetic bars are not stored."""
    from gexhistory.bar_cache import BarCache

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
    from gexhistory.jobs import check_jobs

    jobs = check_jobs(opts.jobs, len(opts.symbols))
    source = worker_source(opts, 1)
    engine = open_engine(opts.db)
    init_schema(engine)
    params = {"conventions": opts.conventions.as_dict(), "chain_model": opts.model.as_dict(),
              "seed": opts.seed if source.is_synthetic else None, "force": opts.force,
              "snapshot_times": {"regular": "09:30,12:30,15:00,16:00", "early_close": "09:30,11:00,12:00,13:00"},
              "timezone": TZ_NAME}
    run_id = writes.start_run(engine, "backfill", opts.symbols, opts.start, opts.end, source.name, params,
                              _versions(), format_ts(dt.datetime.now(ET)))
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
    from gexhistory.jobs import run_symbols

    return run_symbols(engine, source, opts, window, run_id, jobs, progress,
                       lambda symbol, prog: _backfill_symbol(engine, source, symbol, window, opts, run_id, prog))


def _versions() -> dict:
    """The versions of what computes and stores the rows; numpy's is read from its installed
    metadata, which is cheaper than importing it when a rerun has nothing to compute."""
    from importlib.metadata import version

    import sqlalchemy

    return {"gexhistory": __version__, "numpy": version("numpy"), "sqlalchemy": sqlalchemy.__version__}


def _backfill_symbol(engine, source: PriceSource, symbol: str, window: list[Session], opts: BackfillOptions,
                     run_id: int, progress: ProgressFn | None) -> SymbolResult:
    res = SymbolResult(symbol, source.name, sessions_in_window=len(window))
    if not window:
        return res
    existing = writes.complete_sessions(engine, symbol, window[0].date, window[-1].date)
    todo = [s for s in window if s.date not in existing or opts.force
            or (_is_synthetic_label(existing[s.date]) and not source.is_synthetic)]
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

    bundles = compute_sessions(source, symbol, todo, opts.conventions, opts.model,
                               chains=None if source.is_synthetic else chains)
    done = 0
    for lo in range(0, len(todo), opts.batch_sessions):
        batch = todo[lo:lo + opts.batch_sessions]
        rows = [next(bundles) for _ in batch]
        seen = lo + len(batch)
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
        done += len(batch)
        res.sessions_written = done
        if progress:
            progress(symbol, seen, len(todo))
    res.notes = list(getattr(source, "notes", []))
    return res


def _imported_chains(engine, symbol: str, start: dt.date, end: dt.date):
    """date -> stored imported chain (or None): imported chains outrank the modelled one."""
    from gexhistory.chains_import import chain_lookup

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
            if s.date not in held or (_is_synthetic_label(held[s.date]) and not source.is_synthetic)]
    gone = len(batch) - len(keep)
    if gone:
        res.sessions_skipped += gone
        res.counts["gamma_daily_summary"].skipped += gone
        res.counts["gex_history"].skipped += 4 * gone
        res.counts["gamma_history"].skipped += 4 * gone
    return [batch[k] for k in keep], [rows[k] for k in keep]


COMPUTE_CHUNK = 32  # sessions per engine call: big enough to amortise numpy's per-call cost, small enough for cache
THREADS_ENV = "GEXHISTORY_ENGINE_THREADS"


def engine_threads() -> int:
    """Threads that run the engine on chunks ahead of the writer (numpy releases the GIL in its loops):
    GEXHISTORY_ENGINE_THREADS, else two where the machine has two cores."""
    raw = os.environ.get(THREADS_ENV)
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if not 1 <= n <= 64:
            raise BadInput(f"{THREADS_ENV} must be a whole number from 1 to 64, got {raw!r}")
        return n
    return max(1, min(2, os.cpu_count() or 1))


def compute_sessions(source: PriceSource, symbol: str, todo: list[Session], conv: Conventions,
                     model_params: ModelParams, chains: Callable[[dt.date], OptionChain | None] | None = None):
    """Yield, for each session of `todo` in order, its rows for every table (nothing written here).
    `chains(date)` gives a stored imported chain, used instead of the modelled one for that date.

    The sessions before and between the ones written are computed at their close only: their close GEX
    feeds the rolling price-GEX correlation and the signals' GEX scale. Sessions go through the engine
    COMPUTE_CHUNK at a time, in date order (the chain model steps forward), on engine_threads() threads
    that work ahead of the caller; results are used in order, and a session's values do not depend on
    the chunk or thread it lands in."""
    # Imported here, not at the top: a rerun with nothing to compute never needs numpy, the engine
    # or the signal code.
    import numpy as np

    from gexhistory.backfill_signals import SignalContext, fetch_minutes
    from gexhistory.engine.chain_model import ChainModel, warmup_start
    from gexhistory.engine.exposure import compute_sessions_batch
    from gexhistory.engine.signals import SCALE_WINDOW
    from gexhistory.engine.summary import CORR_WINDOW

    first, last = todo[0].date, todo[-1].date
    context = sessions_before(first, max(CORR_WINDOW + 1, SCALE_WINDOW))
    bars_from = warmup_start(context[0].date if context else first)
    bars = source.daily_bars(symbol, bars_from, last)
    _require_bars(bars, todo)
    idx = bars.index_of()
    minutes_with_warmup, minutes = fetch_minutes(source, symbol, todo)
    known = _priced_snapshots(source.name, symbol, todo, minutes)
    model = ChainModel(symbol, bars.dates, bars.close, bars.volume, model_params)
    signals = SignalContext(source, symbol, todo, bars, minutes_with_warmup, conv)

    span = [s for s in sessions_between(context[0].date if context else first, last) if s.date in idx]
    span_close = np.array([bars.close[idx[s.date]] for s in span])
    close_gex = np.full(len(span), np.nan)
    close_iv: dict[dt.date, float | None] = {}

    def chunk(lo: int):
        block = span[lo:lo + COMPUTE_CHUNK]
        imported = [chains(s.date) if chains is not None else None for s in block]
        block_chains = [c if c is not None else model.chain_for(idx[s.date]) for s, c in zip(block, imported)]
        wanted = [s.date in known for s in block]
        spots = [known[s.date][1] if w else [bars.close[idx[s.date]]] for s, w in zip(block, wanted)]
        times = [known[s.date][0] if w else [s.close] for s, w in zip(block, wanted)]
        return block, block_chains, wanted, (block_chains, spots, times, conv, wanted)

    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    threads = engine_threads()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="gex-engine")
    pending: deque = deque()
    starts = iter(range(0, len(span), COMPUTE_CHUNK))
    try:
        while True:
            # The chain model steps forward in this thread; the engine runs on the pool, a few chunks ahead.
            while len(pending) < 2 * threads:
                lo = next(starts, None)
                if lo is None:
                    break
                block, block_chains, wanted, args = chunk(lo)
                pending.append((lo, block, block_chains, wanted, pool.submit(compute_sessions_batch, *args)))
            if not pending:
                break
            lo, block, block_chains, wanted, future = pending.popleft()
            snaps = future.result()
            for k, (s, sn) in enumerate(zip(block, snaps)):
                close_gex[lo + k] = sn[-1].net_gex
                close_iv[s.date] = sn[-1].atm_iv
            corr = _price_gex_corr(span_close, close_gex, lo, len(block))
            ks = [k for k, w in enumerate(wanted) if w]
            sig_rows = signals.rows_for_many(
                [block[k] for k in ks], [snaps[k] for k in ks], [block_chains[k] for k in ks], close_gex,
                [lo + k for k in ks], [span[lo + k - 1].date if lo + k else None for k in ks], close_iv,
                source.name, [block_chains[k].source for k in ks])
            for k, rows in zip(ks, sig_rows):
                s, chain = block[k], block_chains[k]
                yield _rows_for_session(symbol, s, snaps[k], corr[k], source.name, chain.source,
                                        times=known[s.date][0], signal_rows=rows)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _price_gex_corr(close: np.ndarray, close_gex: np.ndarray, lo: int, n: int) -> list[float | None]:
    """The rolling price-GEX correlation of span sessions lo..lo+n-1 (None until CORR_WINDOW changes exist)."""
    from gexhistory.engine.summary import CORR_WINDOW, window_corr

    out: list[float | None] = [None] * n
    start = max(lo, CORR_WINDOW)
    if start >= lo + n:
        return out
    from numpy.lib.stride_tricks import sliding_window_view

    rows = slice(start - CORR_WINDOW, lo + n - CORR_WINDOW)
    corr = window_corr(sliding_window_view(close, CORR_WINDOW + 1)[rows],
                       sliding_window_view(close_gex, CORR_WINDOW + 1)[rows])
    for k, c in zip(range(start - lo, n), corr.tolist()):
        out[k] = None if c != c else c
    return out


def fill_outcomes(engine, symbol: str) -> tuple[int, int]:
    """Fill the outcomes of `symbol`'s stored signals whose horizons are now known, from the stored
    session closes of the same data_source (engine/outcomes.py). Returns (signals updated, still pending)."""
    from gexhistory.engine.outcomes import HORIZONS, outcome
    from gexhistory.store import outcomes as store_outcomes

    pending = store_outcomes.pending_signals(engine, symbol)
    if not pending:
        return 0, 0
    first = min(dt.date.fromisoformat(r["timestamp"][:10]) for r in pending)
    closes: dict[str, dict[dt.date, float]] = {}
    updates, still = [], 0
    cal = [x.date for x in sessions_between(first, dt.date.today() + dt.timedelta(days=40))]
    pos = {d: i for i, d in enumerate(cal)}
    for r in pending:
        day = dt.date.fromisoformat(r["timestamp"][:10])
        src = r["data_source"]
        if src not in closes:
            closes[src] = store_outcomes.session_closes(engine, symbol, src, first)
        i = pos.get(day)
        later = cal[i + 1:i + 1 + max(HORIZONS)] if i is not None else []
        o = outcome(r["spy_price"], later, closes[src], r["trade_direction"]).as_dict()
        if o["price_change_10d"] is None:
            still += 1
        if any(o[k] != r[k] for k in o):
            updates.append({"id": r["id"], **o})
    store_outcomes.update_outcomes(engine, updates)
    return len(updates), still


def _priced_snapshots(label: str, symbol: str, todo: list[Session], minutes) -> dict:
    """Per session, the snapshot times whose price is known and those prices. A time without a price
    (a daily-only source at 12:30) is left out rather than invented; a session with none is an error."""
    import numpy as np

    times = [s.snapshot_times() for s in todo]
    spots = minutes.spots_at(times)
    out = {}
    for j, s in enumerate(todo):
        ok = ~np.isnan(spots[j, :len(times[j])])
        if not ok.any():
            raise WorkFailed(f"{label}: no price for {symbol} on {s.date}")
        out[s.date] = ([t for t, k in zip(times[j], ok) if k], spots[j, :len(times[j])][ok])
    return out


def _require_bars(bars: DailyBars, todo: list[Session]) -> None:
    have = set(bars.dates)
    missing = [s.date for s in todo if s.date not in have]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise WorkFailed(f"{bars.source}: no daily bar for {bars.symbol} on {missing[0]}{more}")


def _rows_for_session(symbol: str, s: Session, snaps: list[GexSnapshot], corr: float | None,
                      data_source: str, chain_source: str, times: list[dt.datetime] | None = None,
                      signal_rows: list[dict] | None = None) -> dict:
    from gexhistory.engine.exposure import GEX_UNIT
    from gexhistory.engine.summary import daily_summary

    prov = {"data_source": data_source, "chain_source": chain_source}
    gex_rows, gamma_rows = [], []
    for t, g in zip(times or s.snapshot_times(), snaps):
        ts = format_ts(t)
        common = {"symbol": symbol, "timestamp": ts, "spot_price": g.spot, "net_gex": g.net_gex,
                  "flip_point": g.flip_point, "call_wall": g.call_wall, "put_wall": g.put_wall,
                  "regime": g.regime, "flip_found": g.flip_found, "timezone": TZ_NAME, **prov}
        gex_rows.append({**common, "mm_state": g.mm_state, "call_gex": g.call_gex, "put_gex": g.put_gex,
                         "gex_unit": GEX_UNIT})
        gamma_rows.append({**common, "date": s.date.isoformat(), "time_of_day": t.strftime("%H:%M"),
                           "implied_volatility": g.atm_iv, "put_call_ratio": g.put_call_ratio,
                           "distance_to_flip_pct": g.distance_to_flip_pct, "zero_dte_gamma": g.zero_dte_gamma,
                           "gamma_expiring_this_week": g.gamma_expiring_this_week,
                           "gamma_expiring_next_week": g.gamma_expiring_next_week, "max_pain": g.max_pain})
    summary = daily_summary([g.net_gex for g in snaps], [g.flip_point for g in snaps],
                            [g.spot for g in snaps], [g.atm_iv for g in snaps])
    summary.update({"symbol": symbol, "date": s.date.isoformat(), "price_gex_corr_20d": corr, **prov})
    return {"gex_history": gex_rows, "gamma_history": gamma_rows, "gamma_daily_summary": [summary],
            "regime_signals": list(signal_rows or []), "snapshots": snaps}
