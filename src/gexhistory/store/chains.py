"""Imported option chains in the database, and the stored prices an import needs for its spots."""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import Connection, and_, delete, insert, select

from gexhistory.store.bulk import refuse_non_finite
from gexhistory.store.schema import gamma_daily_summary, option_chain_contracts, option_chains, price_bars


def replace_chain(conn: Connection, header: dict, contracts: list[dict]) -> None:
    """Store one chain (header + contracts); an earlier import of the same key is replaced."""
    h, c = option_chains, option_chain_contracts
    refuse_non_finite(h, [header])
    refuse_non_finite(c, contracts)
    key = (header["underlying"], header["as_of"], header["chain_source"])
    conn.execute(delete(c).where(c.c.underlying == key[0], c.c.as_of == key[1], c.c.chain_source == key[2]))
    conn.execute(delete(h).where(h.c.underlying == key[0], h.c.as_of == key[1], h.c.chain_source == key[2]))
    conn.execute(insert(h), [header])
    if contracts:
        conn.execute(insert(c), contracts)


def latest_chains(conn: Connection, underlying: str, start: dt.date, end: dt.date) -> dict[dt.date, dict]:
    """Per as-of date in [start, end]: the header of the most recently imported chain."""
    h = option_chains
    q = select(h).where(h.c.underlying == underlying, h.c.as_of >= start.isoformat(),
                        h.c.as_of <= end.isoformat()).order_by(h.c.as_of, h.c.id)
    out: dict[dt.date, dict] = {}
    for row in conn.execute(q).mappings():
        out[dt.date.fromisoformat(row["as_of"])] = dict(row)  # later ids overwrite earlier ones
    return out


def chain_contracts(conn: Connection, underlying: str, as_of: dt.date, chain_source: str) -> dict[str, np.ndarray]:
    c = option_chain_contracts
    q = select(c.c.expiration, c.c.strike, c.c.right, c.c.open_interest, c.c.iv, c.c.iv_source, c.c.gamma).where(
        c.c.underlying == underlying, c.c.as_of == as_of.isoformat(), c.c.chain_source == chain_source
    ).order_by(c.c.expiration, c.c.strike, c.c.right)
    rows = conn.execute(q).all()
    cols = list(zip(*rows)) if rows else [[] for _ in range(7)]
    return {
        "expiration": np.array(cols[0], dtype="datetime64[D]"),
        "strike": np.array(cols[1], dtype=float),
        "is_call": np.array([r == "C" for r in cols[2]], dtype=bool),
        "open_interest": np.array(cols[3], dtype=float),
        "iv": np.array(cols[4], dtype=float),
        "iv_source": np.array(cols[5], dtype=object),
        "gamma": np.array([np.nan if g is None else g for g in cols[6]], dtype=float),
    }


def _bars(conn: Connection, symbol: str, timeframe: str, day: dt.date):
    t = price_bars
    q = select(t.c.timestamp, t.c.open, t.c.close, t.c.data_source).where(
        t.c.symbol == symbol, t.c.timeframe == timeframe, t.c.data_source != "synthetic",
        t.c.timestamp >= f"{day.isoformat()} 00:00:00", t.c.timestamp <= f"{day.isoformat()} 23:59:59",
    ).order_by(t.c.data_source, t.c.timestamp)
    return conn.execute(q).all()


def stored_daily_close(conn: Connection, symbol: str, day: dt.date) -> tuple[float, str] | None:
    """The session's close from stored real (non-synthetic) daily bars, with their data_source."""
    rows = _bars(conn, symbol, "1d", day)
    return (float(rows[0][2]), rows[0][3]) if rows else None


def stored_minute_bars(conn: Connection, symbol: str, day: dt.date) -> tuple[list[tuple[str, float, float]], str] | None:
    """(timestamp, open, close) of the session's stored real minute bars, of one data_source."""
    rows = _bars(conn, symbol, "1m", day)
    if not rows:
        return None
    src = rows[0][3]
    return [(ts, o, c) for ts, o, c, s in rows if s == src], src


def summaries_between(conn: Connection, symbol: str, start: dt.date, end: dt.date) -> dict[dt.date, tuple[float, float]]:
    """date -> (close_price, close_gex) of the stored daily summaries in [start, end]."""
    t = gamma_daily_summary
    q = select(t.c.date, t.c.close_price, t.c.close_gex).where(
        and_(t.c.symbol == symbol, t.c.date >= start.isoformat(), t.c.date <= end.isoformat()))
    return {dt.date.fromisoformat(d): (p, g) for d, p, g in conn.execute(q)}
