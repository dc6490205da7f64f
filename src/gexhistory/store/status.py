"""What the database holds: per symbol and table counts, date range, sources, calendar gaps."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select

from gexhistory.store.schema import gamma_daily_summary, gamma_history, gex_history, regime_signals


@dataclass
class TableStatus:
    table: str
    rows: int
    first: str | None
    last: str | None
    sources: list[str]


@dataclass
class SymbolStatus:
    symbol: str
    tables: list[TableStatus] = field(default_factory=list)
    gaps: list[dt.date] = field(default_factory=list)  # sessions missing between first and last date
    short_sessions: list[dt.date] = field(default_factory=list)  # fewer than 4 snapshots
    pending_outcomes: int = 0


def symbols(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(gamma_daily_summary.c.symbol).distinct().order_by(gamma_daily_summary.c.symbol))]


def symbol_status(engine: Engine, symbol: str) -> SymbolStatus:
    from gexhistory.calendar import sessions_between

    out = SymbolStatus(symbol)
    with engine.connect() as conn:
        for table, time_col in ((gex_history, gex_history.c.timestamp), (gamma_history, gamma_history.c.timestamp),
                                (gamma_daily_summary, gamma_daily_summary.c.date),
                                (regime_signals, regime_signals.c.timestamp)):
            n, first, last = conn.execute(
                select(func.count(), func.min(time_col), func.max(time_col)).where(table.c.symbol == symbol)
            ).one()
            sources = [
                f"{d}/{c}" for d, c in conn.execute(
                    select(table.c.data_source, table.c.chain_source).where(table.c.symbol == symbol).distinct()
                )
            ]
            out.tables.append(TableStatus(table.name, int(n), first and first[:10], last and last[:10], sorted(sources)))
        dates = [dt.date.fromisoformat(d) for (d,) in conn.execute(
            select(gamma_daily_summary.c.date).where(gamma_daily_summary.c.symbol == symbol).order_by(gamma_daily_summary.c.date))]
        short = conn.execute(
            select(gamma_history.c.date).where(gamma_history.c.symbol == symbol)
            .group_by(gamma_history.c.date).having(func.count() < 4)
        )
        out.short_sessions = [dt.date.fromisoformat(d) for (d,) in short]
        out.pending_outcomes = int(conn.execute(
            select(func.count()).select_from(regime_signals)
            .where(regime_signals.c.symbol == symbol, regime_signals.c.price_change_10d.is_(None))
        ).scalar_one())
    if dates:
        have = set(dates)
        out.gaps = [s.date for s in sessions_between(dates[0], dates[-1]) if s.date not in have]
    return out
