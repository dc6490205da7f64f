"""SQL for signal outcomes: the signals still waiting for a horizon, the closes that resolve them, and
the keyed updates. Every statement parameterised."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, bindparam, func, select, update

from gexhistory.store.schema import gamma_daily_summary, regime_signals

OUTCOME_COLUMNS = ("price_change_1d", "price_change_5d", "price_change_10d", "signal_correct")


def pending_signals(engine: Engine, symbol: str) -> list[dict]:
    """Signals of `symbol` with an outcome not known yet (the 10-session change is the last one known)."""
    t = regime_signals
    q = select(t.c.id, t.c.timestamp, t.c.spy_price, t.c.trade_direction, t.c.data_source,
               *[t.c[c] for c in OUTCOME_COLUMNS]).where(
        t.c.symbol == symbol, t.c.price_change_10d.is_(None)).order_by(t.c.timestamp)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def symbols_with_signals(engine: Engine, symbols: list[str]) -> set[str]:
    """Those of `symbols` with at least one stored signal (the others have no outcome or confidence to settle)."""
    t = regime_signals
    out: set[str] = set()
    with engine.connect() as conn:
        for lo in range(0, len(symbols), 500):  # symbols per IN list, far below the bind parameter limits
            out.update(s for (s,) in conn.execute(select(t.c.symbol).distinct().where(
                t.c.symbol.in_(symbols[lo:lo + 500]))))
    return out


def session_closes(engine: Engine, symbol: str, data_source: str, start: dt.date) -> dict[dt.date, float]:
    """close_price of every stored session of `symbol` from `data_source` on or after `start`."""
    t = gamma_daily_summary
    q = select(t.c.date, t.c.close_price).where(
        t.c.symbol == symbol, t.c.data_source == data_source, t.c.date >= start.isoformat())
    with engine.connect() as conn:
        return {dt.date.fromisoformat(d): float(c) for d, c in conn.execute(q) if c is not None}


def update_outcomes(engine: Engine, rows: list[dict]) -> int:
    """rows: {'id', price_change_1d, price_change_5d, price_change_10d, signal_correct}; one transaction."""
    if not rows:
        return 0
    t = regime_signals
    stmt = update(t).where(t.c.id == bindparam("sig_id")).values(
        **{c: bindparam(f"v_{c}") for c in OUTCOME_COLUMNS})
    params = [{"sig_id": r["id"], **{f"v_{c}": r[c] for c in OUTCOME_COLUMNS}} for r in rows]
    with engine.begin() as conn:
        conn.execute(stmt, params)
    return len(rows)


def signal_counts(engine: Engine, symbol: str) -> dict[str, int]:
    """Signals per pattern for `symbol`."""
    t = regime_signals
    q = select(t.c.primary_regime_type, func.count()).where(t.c.symbol == symbol).group_by(
        t.c.primary_regime_type).order_by(t.c.primary_regime_type)
    with engine.connect() as conn:
        return {k: int(n) for k, n in conn.execute(q)}


def signals_for_confidence(engine: Engine, symbol: str) -> list[dict]:
    """Every signal of `symbol` with what its confidence depends on, oldest first."""
    t = regime_signals
    q = (select(t.c.id, t.c.timestamp, t.c.primary_regime_type, t.c.trade_direction, t.c.data_source,
                t.c.signal_correct, t.c.confidence_score)
         .where(t.c.symbol == symbol).order_by(t.c.timestamp, t.c.id))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def update_confidence(engine: Engine, rows: list[dict]) -> int:
    """rows: {'id', 'confidence_score'}; one transaction."""
    if not rows:
        return 0
    t = regime_signals
    stmt = update(t).where(t.c.id == bindparam("sig_id")).values(confidence_score=bindparam("v_conf"))
    with engine.begin() as conn:
        conn.execute(stmt, [{"sig_id": r["id"], "v_conf": r["confidence_score"]} for r in rows])
    return len(rows)
