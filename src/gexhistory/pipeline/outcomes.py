"""What the backfill settles after writing sessions: the outcomes of the stored signals, and every
signal's confidence (the hit rate of its pattern known at its close). Shared by the backfill and the
chain import, which both write signal rows. Numpy-free: a no-op rerun runs it.

Both are settled in one transaction under the symbol's lock, from the committed rows, and for every
signal of the symbol, not only those still pending: another run (an overlapping `--force`, an
import) may have replaced the sessions a known outcome was computed from. A writer's batches queue
on the same lock, so whichever run settles last sees every session as committed and leaves outcomes
that agree with the stored closes (`status --check` reports any that do not: `stale_outcome`).
"""

from __future__ import annotations

import bisect
import datetime as dt

from gexhistory.calendar import sessions_between
from gexhistory.engine.confidence import SignalFact, historical_confidence
from gexhistory.engine.outcomes import differing
from gexhistory.store import outcomes as store_outcomes
from gexhistory.store.writes import lock_symbol


def settle_signals(engine, symbol: str) -> tuple[int, int]:
    """Outcomes and confidence of `symbol`'s signals made to agree with the stored closes, in one
    transaction under the symbol's lock. Returns (signals whose outcome changed, still pending)."""
    with engine.begin() as conn:
        lock_symbol(conn, symbol)
        changed, pending = _fill_outcomes(conn, symbol)
        refresh_confidence(conn, symbol)
    return changed, pending


def settle_symbols(engine, symbols: list[str]) -> None:
    """settle_signals for each of `symbols` that has a stored signal (one query finds them): without a
    signal there is nothing to settle, and thousands of imported symbols would cost thousands of
    transactions for it."""
    with engine.connect() as conn:
        held = store_outcomes.symbols_with_signals(conn, symbols)
    for sym in symbols:
        if sym in held:
            settle_signals(engine, sym)


def _fill_outcomes(conn, symbol: str) -> tuple[int, int]:
    sigs, expected = store_outcomes.expected_outcomes(conn, symbol)
    updates = [{"id": r["id"], **o.as_dict()} for r, o in zip(sigs, expected) if differing(r, o)]
    store_outcomes.update_outcomes(conn, updates)
    return len(updates), sum(o.price_change_10d is None for o in expected)


def refresh_confidence(conn, symbol: str) -> int:
    """Recompute every stored signal's confidence_score (engine/confidence.py: the pattern's hit rate from
    the outcomes known at its close) and write the ones that changed. All of them, every run: an
    outcome that becomes known, or a signal written or replaced anywhere in the history, changes the
    rates of the later signals of its pattern. Returns the number of signals updated."""
    sigs = store_outcomes.signals_for_confidence(conn, symbol)
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
    return store_outcomes.update_confidence(conn, changed)


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-9)
