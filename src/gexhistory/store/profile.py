"""What the strike profile reads back: a stored snapshot, the parameters of the run that wrote it, and
the header of the imported chain it was computed from."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Connection, select

from gexhistory.store.schema import backfill_runs, gex_history, option_chains


def snapshot_row(conn: Connection, symbol: str, timestamp: str | None = None, day: dt.date | None = None) -> dict | None:
    """The gex_history row of `symbol` at `timestamp` ('YYYY-MM-DD HH:MM:SS' ET), else its last one on
    `day`, else its last one of all; None when there is none."""
    t = gex_history
    q = select(t).where(t.c.symbol == symbol)
    if timestamp is not None:
        q = q.where(t.c.timestamp == timestamp)
    elif day is not None:
        q = q.where(t.c.timestamp >= f"{day.isoformat()} 00:00:00", t.c.timestamp <= f"{day.isoformat()} 23:59:59")
    row = conn.execute(q.order_by(t.c.timestamp.desc()).limit(1)).mappings().first()
    return dict(row) if row is not None else None


def run_parameters(conn: Connection, run_id: int | None) -> dict | None:
    """backfill_runs.parameters of run `run_id` (what it computed with), or None."""
    if run_id is None:
        return None
    text = conn.execute(select(backfill_runs.c.parameters).where(backfill_runs.c.id == run_id)).scalar_one_or_none()
    return json.loads(text) if text else None


def chain_header(conn: Connection, underlying: str, as_of: dt.date, chain_source: str) -> dict | None:
    """The option_chains row of one imported chain, or None."""
    h = option_chains
    q = select(h).where(h.c.underlying == underlying, h.c.as_of == as_of.isoformat(), h.c.chain_source == chain_source)
    row = conn.execute(q.order_by(h.c.id.desc()).limit(1)).mappings().first()
    return dict(row) if row is not None else None
