"""What the database holds: per symbol and table counts, date range, sources, calendar gaps."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, func, select

from gexhistory.calendar import sessions_between
from gexhistory.store.outcomes import signal_counts
from gexhistory.store.schema import (
    gamma_daily_summary,
    gamma_history,
    gex_history,
    regime_signals,
)


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
    pending_outcomes: int = 0  # signals whose 10-session outcome is not known yet
    unscored_signals: int = 0  # signals without signal_correct (5-session move not known yet)
    signals_by_pattern: dict[str, int] = field(default_factory=dict)


def symbols(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(gamma_daily_summary.c.symbol).distinct().order_by(gamma_daily_summary.c.symbol))]


def symbol_status(engine: Engine, symbol: str) -> SymbolStatus:
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
    out.signals_by_pattern = signal_counts(engine, symbol)
    with engine.connect() as conn:
        out.unscored_signals = int(conn.execute(
            select(func.count()).select_from(regime_signals)
            .where(regime_signals.c.symbol == symbol, regime_signals.c.signal_correct.is_(None))
        ).scalar_one())
    if dates:
        have = set(dates)
        out.gaps = [s.date for s in sessions_between(dates[0], dates[-1]) if s.date not in have]
    return out


# ---- status --check: problems a user should know about, one line each -------------------------------

# Columns every stored snapshot or summary has a computed value for, modelled or real. Columns that are
# NULL by design (flip_point when net GEX does not cross zero within +-20% of spot, the 20-session
# correlation before 20 sessions exist, outcome columns before they are known) are not listed.
IMPORTANT_COLUMNS = {
    "gex_history": ("net_gex", "spot_price", "call_gex", "put_gex", "call_wall", "put_wall", "regime", "mm_state"),
    "gamma_history": ("net_gex", "spot_price", "implied_volatility", "put_call_ratio", "max_pain"),
    "gamma_daily_summary": ("open_gex", "close_gex", "open_price", "close_price", "avg_iv"),
}
NULL_SHARE_LIMIT = 0.05  # a listed column more than 5% NULL for a symbol is a problem
# Robust z-score of net GEX on the symbol's own history: 0.6745 * (x - median) / MAD. Net GEX is
# heavy-tailed (it scales with S^2 and with open interest, which grows over years), so the limit is
# far above a normal's 3.5; ten years of every symbol of the synthetic market stay well inside it.
OUTLIER_Z_LIMIT = 25.0
MIN_SNAPSHOTS = 4
_BY_NAME = {t.name: t for t in (gex_history, gamma_history, gamma_daily_summary)}


@dataclass
class Problem:
    symbol: str
    kind: str  # gap | short_session | null_heavy | outlier | mixed_sources
    message: str

    def line(self) -> str:
        return f"{self.symbol}: {self.kind}: {self.message}"


def _dates_text(dates: list, limit: int = 3) -> str:
    shown = ", ".join(str(d) for d in dates[:limit])
    return shown + (f" and {len(dates) - limit} more" if len(dates) > limit else "")


def _snapshots_per_session(conn, table, symbol: str) -> dict[str, int]:
    day = table.c.date if table is gamma_history else func.substr(table.c.timestamp, 1, 10)
    q = select(day, func.count()).where(table.c.symbol == symbol).group_by(day)
    return {d: int(n) for d, n in conn.execute(q)}


def _end_of_day_imports(conn, symbol: str) -> set[str]:
    """Sessions recomputed from an imported end-of-day chain without intraday prices: one snapshot
    (the close) is all they can have, so they are not short."""
    t = gamma_daily_summary
    q = select(t.c.date).where(t.c.symbol == symbol, t.c.snapshots_count == 1, t.c.chain_source != "modelled")
    return {d for (d,) in conn.execute(q)}


def null_shares(conn, table, symbol: str, columns) -> tuple[int, dict[str, float]]:
    """Rows of `symbol` in `table` and, per column, the share of them that are NULL."""
    cols = [table.c[c] for c in columns]
    n, *present = conn.execute(select(func.count(), *[func.count(c) for c in cols]).where(table.c.symbol == symbol)).one()
    n = int(n)
    return n, {c: (1.0 - p / n if n else 0.0) for c, p in zip(columns, present)}


def net_gex_history(conn, symbol: str):
    q = select(gex_history.c.timestamp, gex_history.c.net_gex).where(
        gex_history.c.symbol == symbol, gex_history.c.net_gex.is_not(None)).order_by(gex_history.c.timestamp)
    got = conn.execute(q).all()
    return [r[0] for r in got], np.array([r[1] for r in got], dtype=float)


def source_mix(conn, symbol: str) -> dict[str, int]:
    """data_source -> rows of gex_history for `symbol`."""
    q = select(gex_history.c.data_source, func.count()).where(gex_history.c.symbol == symbol).group_by(gex_history.c.data_source)
    return {s: int(n) for s, n in conn.execute(q)}


def robust_z(values):
    med = np.median(values)
    mad = np.median(np.abs(values - med))
    if mad == 0:
        return np.zeros_like(values)
    return 0.6745 * (values - med) / mad


def check_symbol(engine: Engine, symbol: str, last_session: dt.date | None = None) -> list[Problem]:
    """Every problem found for `symbol`; sessions after `last_session` (today's, still open) are not judged."""
    problems: list[Problem] = []
    with engine.connect() as conn:
        summary_days = {d for (d,) in conn.execute(
            select(gamma_daily_summary.c.date).where(gamma_daily_summary.c.symbol == symbol))}
        per_table = {t.name: _snapshots_per_session(conn, t, symbol) for t in (gex_history, gamma_history)}
        nulls = {name: null_shares(conn, _BY_NAME[name], symbol, cols) for name, cols in IMPORTANT_COLUMNS.items()}
        stamps, gex = net_gex_history(conn, symbol)
        mix = source_mix(conn, symbol)
        eod_only = _end_of_day_imports(conn, symbol)
    last = last_session.isoformat() if last_session else "9999-12-31"

    days = sorted(d for d in summary_days | set(per_table["gex_history"]) | set(per_table["gamma_history"]) if d <= last)
    if days:
        calendar = [s.date.isoformat() for s in sessions_between(dt.date.fromisoformat(days[0]), dt.date.fromisoformat(days[-1]))]
        missing = [d for d in calendar if d not in summary_days]
        if missing:
            problems.append(Problem(symbol, "gap", f"{len(missing)} sessions between {days[0]} and {days[-1]} have no "
                                                   f"daily summary: {_dates_text(missing)}"))
        off_calendar = sorted(set(days) - set(calendar))
        if off_calendar:
            problems.append(Problem(symbol, "gap", f"{len(off_calendar)} dates with rows are not NYSE sessions: "
                                                   f"{_dates_text(off_calendar)}"))
        for name, counts in per_table.items():
            held = summary_days | set(counts)  # a session with no rows at all is a gap, not a short session
            short = [d for d in calendar if d in held and counts.get(d, 0) < MIN_SNAPSHOTS
                     and not (d in eod_only and counts.get(d, 0) == 1)]
            if short:
                problems.append(Problem(symbol, "short_session", f"{len(short)} sessions with fewer than "
                                        f"{MIN_SNAPSHOTS} snapshots in {name}: {_dates_text(short)}"))
    for name, (n, shares) in nulls.items():
        for col, share in shares.items():
            if n and share > NULL_SHARE_LIMIT:
                problems.append(Problem(symbol, "null_heavy", f"{name}.{col} is NULL in {share:.0%} of {n:,} rows "
                                        f"(limit {NULL_SHARE_LIMIT:.0%})"))
    if gex.size >= 20:
        z = robust_z(gex)
        far = np.flatnonzero(np.abs(z) > OUTLIER_Z_LIMIT)
        if far.size:
            worst = int(far[np.argmax(np.abs(z[far]))])
            problems.append(Problem(symbol, "outlier", f"{far.size} snapshots with net GEX beyond a robust z-score of "
                                    f"{OUTLIER_Z_LIMIT:g}; worst {stamps[worst]} net_gex={gex[worst]:.4g} (z={z[worst]:.0f})"))
    if "synthetic" in mix and len(mix) > 1:
        others = ", ".join(f"{s} ({n:,})" for s, n in sorted(mix.items()) if s != "synthetic")
        problems.append(Problem(symbol, "mixed_sources", f"{mix['synthetic']:,} synthetic snapshots mixed with real ones "
                                f"from {others}"))
    return problems
