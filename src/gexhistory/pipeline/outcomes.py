"""What the backfill settles after writing sessions: the outcomes of stored signals whose horizons are
now known, and every signal's confidence (the hit rate of its pattern known at its close). Shared by
the backfill and the chain import, which both write signal rows. Numpy-free: a no-op rerun runs it.
"""

from __future__ import annotations

import bisect
import datetime as dt

from gexhistory.calendar import sessions_between
from gexhistory.engine.confidence import SignalFact, historical_confidence
from gexhistory.engine.outcomes import HORIZONS, outcome
from gexhistory.store import outcomes as store_outcomes


def fill_outcomes(engine, symbol: str) -> tuple[int, int]:
    """Fill the outcomes of `symbol`'s stored signals whose horizons are now known, from the stored
    session closes of the same data_source (engine/outcomes.py). Returns (signals updated, still pending)."""
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


def settle_symbols(engine, symbols: list[str]) -> None:
    """fill_outcomes and refresh_confidence for each of `symbols` that has a stored signal (one query
    finds them): without a signal both have nothing to do, and thousands of symbols would cost
    thousands of queries for it."""
    held = store_outcomes.symbols_with_signals(engine, symbols)
    for sym in symbols:
        if sym in held:
            fill_outcomes(engine, sym)
            refresh_confidence(engine, sym)


def refresh_confidence(engine, symbol: str) -> int:
    """Recompute every stored signal's confidence_score (engine/confidence.py: the pattern's hit rate from
    the outcomes known at its close) and write the ones that changed. All of them, every run: an
    outcome that becomes known, or a signal written or replaced anywhere in the history, changes the
    rates of the later signals of its pattern. Returns the number of signals updated."""
    sigs = store_outcomes.signals_for_confidence(engine, symbol)
    if not sigs:
        return 0
    days = [dt.date.fromisoformat(r["timestamp"][:10]) for r in sigs]
    cal = [s.date for s in sessions_between(min(days), max(days))]
    # Position in the exchange calendar, so "5 sessions later" counts sessions, not stored rows.
    facts = [SignalFact(bisect.bisect_left(cal, d), r["primary_regime_type"], r["trade_direction"],
                        r["data_source"], r["signal_correct"]) for d, r in zip(days, sigs)]
    changed = [{"id": r["id"], "confidence_score": c.score}
               for r, c in zip(sigs, historical_confidence(facts))
               if not _same(r["confidence_score"], c.score)]
    return store_outcomes.update_confidence(engine, changed)


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-9)
