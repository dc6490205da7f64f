"""The backfill's computation: bars -> modelled chains -> engine -> signals -> one bundle of rows per session.

Nothing here writes. `compute_sessions` yields, session by session in date order, the rows of every table;
backfill.py writes them in session-atomic batches. A session's rows never depend on which other sessions
were computed with it, so the work can be cut anywhere: in chunks for the engine, on threads, and, for a
long window of a source that is pure computation, across processes (backfill.split).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gexhistory.calendar import ET, TZ_NAME, Session, format_ts, sessions_before, sessions_between
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.chain_model import ModelParams, warmup_start
from gexhistory.engine.exposure import GEX_UNIT, Conventions, GexSnapshot, compute_gex
from gexhistory.engine.signals import SCALE_WINDOW
from gexhistory.engine.summary import CORR_WINDOW, daily_summary, window_corr
from gexhistory.errors import WorkFailed
from gexhistory.pipeline import parallel
from gexhistory.pipeline.model_chains import chain_model
from gexhistory.pipeline.signals import SignalContext, fetch_minutes
from gexhistory.runtime import engine_threads
from gexhistory.sources.base import DailyBars, PriceSource
from gexhistory.words import first_of

COMPUTE_CHUNK = 48  # sessions per engine call: big enough to amortise numpy's per-call cost, small enough for cache


def compute_sessions(source: PriceSource, symbol: str, todo: list[Session], conv: Conventions,
                     model_params: ModelParams, chains: Callable[[dt.date], OptionChain | None] | None = None,
                     threads: int | None = None):
    """Yield, for each session of `todo` in order, its rows for every table (nothing written here).
    `chains(date)` gives a stored imported chain, used instead of the modelled one for that date.

    The sessions before and between the ones written are computed at their close only: their close GEX
    feeds the rolling price-GEX correlation and the signals' GEX scale. Sessions go through the engine
    COMPUTE_CHUNK at a time, in date order (the chain model steps forward), on engine_threads() threads
    that work ahead of the caller; results are used in order, and a session's values do not depend on
    the chunk or thread it lands in."""
    first, last = todo[0].date, todo[-1].date
    context = sessions_before(first, max(CORR_WINDOW + 1, SCALE_WINDOW))
    bars = source.daily_bars(symbol, bars_start(first), last)
    _require_bars(bars, todo)
    idx = bars.index_of()
    minutes_with_warmup, minutes = fetch_minutes(source, symbol, todo)
    known = _priced_snapshots(source.name, symbol, todo, minutes)
    model = chain_model(symbol, bars.dates, bars.close, bars.volume, model_params)
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
        return block, block_chains, wanted, (block_chains, spots, times, conv)

    def finish(lo, block, block_chains, wanted, snaps):
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
            yield session_rows(symbol, s, snaps[k], corr[k], source.name, chain.source,
                                    times=known[s.date][0], signal_rows=rows)

    threads = engine_threads() if threads is None else threads
    if threads <= 1:
        for lo in range(0, len(span), COMPUTE_CHUNK):
            block, block_chains, wanted, args = chunk(lo)
            yield from finish(lo, block, block_chains, wanted, compute_gex(*args, with_flip=wanted))
        return

    pool = parallel.threads(threads)
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
                pending.append((lo, block, block_chains, wanted, pool.submit(compute_gex, *args, with_flip=wanted)))
            if not pending:
                break
            lo, block, block_chains, wanted, future = pending.popleft()
            yield from finish(lo, block, block_chains, wanted, future.result())
    finally:
        # Normally the consumer closes this generator (write_sessions does, when a write fails). Left to
        # the garbage collector it may be finalised in any thread, one of this pool's own included (seen
        # when the database died during a --jobs 2 run), and a thread cannot join itself: there, the
        # pool is told to stop without waiting; its threads end with the chunks they are computing.
        own_thread = threading.current_thread().name.startswith(parallel.ENGINE_THREAD_PREFIX)
        pool.shutdown(wait=not own_thread, cancel_futures=True)


def _price_gex_corr(close: np.ndarray, close_gex: np.ndarray, lo: int, n: int) -> list[float | None]:
    """The rolling price-GEX correlation of span sessions lo..lo+n-1 (None until CORR_WINDOW changes exist)."""
    out: list[float | None] = [None] * n
    start = max(lo, CORR_WINDOW)
    if start >= lo + n:
        return out
    rows = slice(start - CORR_WINDOW, lo + n - CORR_WINDOW)
    corr = window_corr(sliding_window_view(close, CORR_WINDOW + 1)[rows],
                       sliding_window_view(close_gex, CORR_WINDOW + 1)[rows])
    for k, c in zip(range(start - lo, n), corr.tolist()):
        out[k] = None if c != c else c
    return out


def _priced_snapshots(label: str, symbol: str, todo: list[Session], minutes) -> dict:
    """Per session, the snapshot times whose price is known and those prices. A time without a price
    (a daily-only source at 12:30) is left out rather than invented; a session with none is an error."""
    times = [s.snapshot_times() for s in todo]
    spots = minutes.spots_at(times)
    out = {}
    for j, s in enumerate(todo):
        ok = ~np.isnan(spots[j, :len(times[j])])
        if not ok.any():
            raise WorkFailed(f"{label}: no price for {symbol} on {s.date}")
        out[s.date] = ([t for t, k in zip(times[j], ok) if k], spots[j, :len(times[j])][ok])
    return out


def bars_start(first: dt.date) -> dt.date:
    """The first day whose daily bars the computation of sessions from `first` on reads: the context
    sessions before it (correlation, signal scale) and the chain model's warm-up before those."""
    context = sessions_before(first, max(CORR_WINDOW + 1, SCALE_WINDOW))
    return warmup_start(context[0].date if context else first)


def _require_bars(bars: DailyBars, todo: list[Session]) -> None:
    have = set(bars.dates)
    missing = [s.date for s in todo if s.date not in have]
    if missing:
        raise WorkFailed(f"{bars.source}: no daily bar for {bars.symbol} on {first_of(missing, 1)}")


def session_rows(symbol: str, s: Session, snaps: list[GexSnapshot], corr: float | None,
                      data_source: str, chain_source: str, times: list[dt.datetime] | None = None,
                      signal_rows: list[dict] | None = None) -> dict:
    prov = {"data_source": data_source, "chain_source": chain_source}
    gex_rows, gamma_rows = [], []
    day = s.date.isoformat()
    for t, g in zip(times or s.snapshot_times(), snaps):
        # Snapshot times are the session's own, in ET: the timestamp is the date and the wall clock.
        ts = f"{day} {t.hour:02d}:{t.minute:02d}:{t.second:02d}" if t.tzinfo is ET else format_ts(t)
        common = {"symbol": symbol, "timestamp": ts, "spot_price": g.spot, "net_gex": g.net_gex,
                  "flip_point": g.flip_point, "call_wall": g.call_wall, "put_wall": g.put_wall,
                  "regime": g.regime, "flip_found": g.flip_found, "timezone": TZ_NAME, **prov}
        gex_rows.append({**common, "mm_state": g.mm_state, "call_gex": g.call_gex, "put_gex": g.put_gex,
                         "gex_unit": GEX_UNIT})
        gamma_rows.append({**common, "date": day, "time_of_day": ts[11:16],
                           "implied_volatility": g.atm_iv, "put_call_ratio": g.put_call_ratio,
                           "distance_to_flip_pct": g.distance_to_flip_pct, "zero_dte_gamma": g.zero_dte_gamma,
                           "gamma_expiring_this_week": g.gamma_expiring_this_week,
                           "gamma_expiring_next_week": g.gamma_expiring_next_week, "max_pain": g.max_pain})
    summary = daily_summary([g.net_gex for g in snaps], [g.flip_point for g in snaps],
                            [g.spot for g in snaps], [g.atm_iv for g in snaps])
    summary.update({"symbol": symbol, "date": day, "price_gex_corr_20d": corr, **prov})
    return {"gex_history": gex_rows, "gamma_history": gamma_rows, "gamma_daily_summary": [summary],
            "regime_signals": list(signal_rows or []), "snapshots": snaps}
