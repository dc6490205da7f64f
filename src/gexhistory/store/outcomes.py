"""SQL for signal outcomes: the signals and the closes that settle them, and the keyed updates. Every
statement parameterised. The reads and writes take the caller's connection, so that settling a
symbol's signals is one transaction under its lock (pipeline/outcomes.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from gexhistory.calendar import sessions_between
from gexhistory.engine.outcomes import Outcome, outcomes_for
from gexhistory.store.bulk import refuse_non_finite
from gexhistory.store.members import one_of
from gexhistory.store.schema import gamma_daily_summary, regime_signals

OUTCOME_COLUMNS = ("price_change_1d", "price_change_5d", "price_change_10d", "signal_correct")
# Calendar days past the last signal that hold its 10 later sessions, whatever the holidays.
HORIZON_DAYS = 40


def expected_outcomes(conn: Connection, symbol: str) -> tuple[list[dict], list[Outcome]]:
    """(every stored signal of `symbol`, the outcome it should hold from the stored closes), oldest
    first: what the backfill writes and what `status --check` compares with (stale_outcome)."""
    sigs = signal_outcomes(conn, symbol)
    if not sigs:
        return [], []
    first = dt.date.fromisoformat(sigs[0]["timestamp"][:10])
    last = dt.date.fromisoformat(sigs[-1]["timestamp"][:10])
    cal = [s.date for s in sessions_between(first, last + dt.timedelta(days=HORIZON_DAYS))]
    return sigs, outcomes_for(sigs, session_closes(conn, symbol, first), cal)


def signal_outcomes(conn: Connection, symbol: str) -> list[dict]:
    """Every signal of `symbol` with what its outcome depends on and the outcome stored, oldest first."""
    t = regime_signals
    q = select(t.c.id, t.c.timestamp, t.c.spy_price, t.c.trade_direction, t.c.data_source,
               *[t.c[c] for c in OUTCOME_COLUMNS]).where(t.c.symbol == symbol).order_by(t.c.timestamp, t.c.id)
    return _dicts(conn.execute(q))


def symbols_with_signals(conn: Connection, symbols: list[str]) -> set[str]:
    """Those of `symbols` with at least one stored signal (the others have no outcome or confidence to settle)."""
    t = regime_signals
    out: set[str] = set()
    for among in one_of(conn, t.c.symbol, symbols):
        out.update(s for (s,) in conn.execute(select(t.c.symbol).distinct().where(among)))
    return out


def session_closes(conn: Connection, symbol: str, start: dt.date) -> dict[str, dict[dt.date, float]]:
    """Per data_source, close_price of every stored session of `symbol` on or after `start`."""
    t = gamma_daily_summary
    q = select(t.c.data_source, t.c.date, t.c.close_price).where(t.c.symbol == symbol, t.c.date >= start.isoformat())
    out: dict[str, dict[dt.date, float]] = {}
    for src, d, c in conn.execute(q).all():
        if c is not None:
            out.setdefault(src, {})[dt.date.fromisoformat(d)] = float(c)
    return out


def update_outcomes(conn: Connection, rows: list[dict]) -> int:
    """rows: {'id', price_change_1d, price_change_5d, price_change_10d, signal_correct}."""
    if not rows:
        return 0
    t = regime_signals
    refuse_non_finite(t, [{c: r[c] for c in OUTCOME_COLUMNS} for r in rows])
    stmt = update(t).where(t.c.id == bindparam("sig_id")).values(
        **{c: bindparam(f"v_{c}") for c in OUTCOME_COLUMNS})
    params = [{"sig_id": r["id"], **{f"v_{c}": r[c] for c in OUTCOME_COLUMNS}} for r in rows]
    conn.execute(stmt, params)
    return len(rows)


def signal_counts(engine: Engine, symbol: str) -> dict[str, int]:
    """Signals per pattern for `symbol`."""
    t = regime_signals
    q = select(t.c.primary_regime_type, func.count()).where(t.c.symbol == symbol).group_by(
        t.c.primary_regime_type).order_by(t.c.primary_regime_type)
    with engine.connect() as conn:
        return {k: int(n) for k, n in conn.execute(q)}


def signals_for_confidence(conn: Connection, symbol: str) -> list[dict]:
    """Every signal of `symbol` with what its confidence depends on, oldest first."""
    t = regime_signals
    q = (select(t.c.id, t.c.timestamp, t.c.primary_regime_type, t.c.trade_direction, t.c.data_source,
                t.c.signal_correct, t.c.confidence_score)
         .where(t.c.symbol == symbol).order_by(t.c.timestamp, t.c.id))
    return _dicts(conn.execute(q))


def _dicts(result) -> list[dict]:
    """Rows as dicts, fetched at once: every run reads all of a symbol's signals, a no-op rerun included,
    and row-by-row fetching with a mapping per row cost it twice as much."""
    keys = list(result.keys())
    return [dict(zip(keys, r)) for r in result.all()]


def update_confidence(conn: Connection, rows: list[dict]) -> int:
    """rows: {'id', 'confidence_score'}."""
    if not rows:
        return 0
    t = regime_signals
    refuse_non_finite(t, rows)
    stmt = update(t).where(t.c.id == bindparam("sig_id")).values(confidence_score=bindparam("v_conf"))
    conn.execute(stmt, [{"sig_id": r["id"], "v_conf": r["confidence_score"]} for r in rows])
    return len(rows)
