"""price_bars: the bars a run used, with their source; read back so a rerun does not fetch them again.

Timestamps are the bar's start in ET ('YYYY-MM-DD 00:00:00' for daily bars). Writes are upserts on
(symbol, timeframe, timestamp, data_source), so storing the same bars twice changes nothing.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, select

from gexhistory.store.bulk import insert_many
from gexhistory.store.schema import price_bars

KEY = ("symbol", "timeframe", "timestamp", "data_source")
COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "trades", "close_only")


def read_bars(engine: Engine, symbol: str, timeframe: str, data_source: str, first_ts: str, last_ts: str) -> list[tuple]:
    """(timestamp, open, high, low, close, volume, vwap, trades, close_only) in time order."""
    t = price_bars
    q = (select(t.c.timestamp, *(t.c[c] for c in COLUMNS))
         .where(t.c.symbol == symbol, t.c.timeframe == timeframe, t.c.data_source == data_source,
                t.c.timestamp >= first_ts, t.c.timestamp <= last_ts)
         .order_by(t.c.timestamp))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(q)]


def upsert_bars(conn: Connection, rows: list[dict]) -> int:
    """Insert bars, or update the stored values of the same key; returns the rows sent."""
    if not rows:
        return 0
    full = [{"vwap": None, "trades": None, "close_only": False, **r} for r in rows]
    return insert_many(conn, price_bars, full, conflict=KEY, update=COLUMNS)
