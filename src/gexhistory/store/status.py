"""What the database holds, and what is wrong with it: one source for `status` and `status --check`.

`symbol_status` gives per table counts, dates and sources, and the problems `check_symbol` finds;
`status` prints both, `status --check` prints the problems alone (exit 1 when there is one), so the
two can never disagree. The problems come from the kinds registered below with `problem_kind`, in
registration order; the README's health-check table lists exactly these kinds (a test compares them).

A new kind is one function: decorate it with `@problem_kind("name", "what it finds")`; it receives the
symbol's `Facts` (shared, lazily loaded figures and the open connection `facts.conn` for anything
else) and returns one message per problem found.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from sqlalchemy import Engine, func, inspect, select, union

from gexhistory.calendar import sessions_between
from gexhistory.engine.outcomes import differing
from gexhistory.store.outcomes import expected_outcomes, signal_counts
from gexhistory.store.schema import (
    gamma_daily_summary,
    gamma_history,
    gex_history,
    regime_signals,
)
from gexhistory.words import plural


@dataclass
class TableStatus:
    table: str
    rows: int
    first: str | None
    last: str | None
    sources: list[str]
    real_chain_sessions: int = 0  # sessions with a row from a real (not modelled) option chain


@dataclass
class Problem:
    symbol: str
    kind: str  # one of KINDS
    message: str

    def line(self) -> str:
        return f"{self.symbol}: {self.kind}: {self.message}"


@dataclass
class SymbolStatus:
    symbol: str
    tables: list[TableStatus] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # exactly what `status --check` reports
    end_of_day_sessions: int = 0  # sessions from an imported end-of-day chain: one (close) snapshot by design
    pending_outcomes: int = 0  # signals whose 10-session outcome is not known yet
    unscored_signals: int = 0  # signals without signal_correct (5-session move not known yet)
    signals_by_pattern: dict[str, int] = field(default_factory=dict)

    @property
    def real_chain_sessions(self) -> int:
        """Sessions with a snapshot computed from a real option chain (imported, or a live snapshot)."""
        return max((t.real_chain_sessions for t in self.tables if t.table == "gex_history"), default=0)

    def as_dict(self) -> dict:
        """JSON-ready (`status --json`)."""
        return {"symbol": self.symbol, "real_chain_sessions": self.real_chain_sessions,
                "tables": [vars(t) for t in self.tables], "problems": [vars(p) for p in self.problems],
                "end_of_day_sessions": self.end_of_day_sessions, "pending_outcomes": self.pending_outcomes,
                "unscored_signals": self.unscored_signals, "signals_by_pattern": self.signals_by_pattern}


def has_tables(engine: Engine) -> bool:
    return "gamma_daily_summary" in inspect(engine).get_table_names()


def symbols(engine: Engine) -> list[str]:
    """Every symbol with a stored daily summary or snapshot (live snapshots alone count too)."""
    q = union(select(gamma_daily_summary.c.symbol).distinct(), select(gex_history.c.symbol).distinct())
    with engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(q))


def symbol_status(engine: Engine, symbol: str, last_session: dt.date | None = None) -> SymbolStatus:
    """Counts, dates and sources per table, and the problems `check_symbol` finds (sessions after
    `last_session`, today's still open, are not judged)."""
    out = SymbolStatus(symbol, problems=check_symbol(engine, symbol, last_session))
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
            day = time_col if table is gamma_daily_summary else func.substr(time_col, 1, 10)
            real = conn.execute(select(func.count(day.distinct())).where(
                table.c.symbol == symbol, table.c.chain_source != "modelled")).scalar_one()
            out.tables.append(TableStatus(table.name, int(n), first and first[:10], last and last[:10], sorted(sources),
                                          int(real)))
        out.end_of_day_sessions = len(_end_of_day_imports(conn, symbol))
        out.pending_outcomes = int(conn.execute(
            select(func.count()).select_from(regime_signals)
            .where(regime_signals.c.symbol == symbol, regime_signals.c.price_change_10d.is_(None))
        ).scalar_one())
        out.unscored_signals = int(conn.execute(
            select(func.count()).select_from(regime_signals)
            .where(regime_signals.c.symbol == symbol, regime_signals.c.signal_correct.is_(None))
        ).scalar_one())
    out.signals_by_pattern = signal_counts(engine, symbol)
    return out


# ---- the kinds of problem --------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    name: str
    what: str  # one line: what it looks for (the README's health-check table says the same)
    find: Callable[[Facts], list[str]]


KINDS: dict[str, Kind] = {}


def problem_kind(name: str, what: str):
    """Register `find(facts) -> [message, ...]` as the check of the kind `name`."""

    def register(find: Callable[[Facts], list[str]]) -> Callable[[Facts], list[str]]:
        KINDS[name] = Kind(name, what, find)
        return find

    return register


class Facts:
    """What the checks of one symbol read, each loaded once, on first use, through one connection."""

    def __init__(self, conn, symbol: str, last_session: dt.date | None):
        self.conn, self.symbol = conn, symbol
        self.last = last_session.isoformat() if last_session else "9999-12-31"

    @cached_property
    def summary_days(self) -> set[str]:
        t = gamma_daily_summary
        return {d for (d,) in self.conn.execute(select(t.c.date).where(t.c.symbol == self.symbol))}

    @cached_property
    def snapshots(self) -> dict[str, dict[str, int]]:
        """Per snapshot table, snapshots per session date."""
        return {t.name: _snapshots_per_session(self.conn, t, self.symbol) for t in (gex_history, gamma_history)}

    @cached_property
    def days(self) -> list[str]:
        """Dates holding any row, up to the last judged session."""
        held = self.summary_days.union(*(set(c) for c in self.snapshots.values()))
        return sorted(d for d in held if d <= self.last)

    @cached_property
    def calendar(self) -> list[str]:
        """NYSE sessions from the first to the last held date."""
        if not self.days:
            return []
        span = sessions_between(dt.date.fromisoformat(self.days[0]), dt.date.fromisoformat(self.days[-1]))
        return [s.date.isoformat() for s in span]

    @cached_property
    def end_of_day_imports(self) -> set[str]:
        return _end_of_day_imports(self.conn, self.symbol)

    @cached_property
    def stored_symbols(self) -> list[str]:
        q = union(select(gamma_daily_summary.c.symbol).distinct(), select(gex_history.c.symbol).distinct())
        return sorted(r[0] for r in self.conn.execute(q))


def check_symbol(engine: Engine, symbol: str, last_session: dt.date | None = None) -> list[Problem]:
    """Every problem found for `symbol`, kind by kind; sessions after `last_session` are not judged."""
    with engine.connect() as conn:
        facts = Facts(conn, symbol, last_session)
        return [Problem(symbol, kind.name, message) for kind in KINDS.values() for message in kind.find(facts)]


def _dates_text(dates: list, limit: int = 3) -> str:
    shown = ", ".join(str(d) for d in dates[:limit])
    return shown + (f" and {len(dates) - limit:,} more" if len(dates) > limit else "")


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


@problem_kind("no_rows", "a symbol asked for (`--symbol`) that has no snapshot and no daily summary stored")
def _no_rows(f: Facts) -> list[str]:
    if f.summary_days or any(f.snapshots.values()):
        return []
    held = [s for s in f.stored_symbols if s != f.symbol]
    near = difflib.get_close_matches(f.symbol, held, n=2, cutoff=0.6)
    where = f"the database holds {', '.join(held)}" if held else "the database is empty"
    return [f"nothing stored for {f.symbol}: {where}" + (f" (did you mean {' or '.join(near)}?)" if near else "")]


@problem_kind("gap", "NYSE sessions between a symbol's first and last stored date with no daily summary, "
                     "and rows on dates that are not sessions")
def _gaps(f: Facts) -> list[str]:
    out = []
    missing = [d for d in f.calendar if d not in f.summary_days]
    if missing:
        out.append(f"{plural(len(missing), 'session')} between {f.days[0]} and {f.days[-1]} "
                   f"{'has' if len(missing) == 1 else 'have'} no daily summary: {_dates_text(missing)}")
    off_calendar = sorted(set(f.days) - set(f.calendar))
    if off_calendar:
        are = "is not an NYSE session" if len(off_calendar) == 1 else "are not NYSE sessions"
        out.append(f"{plural(len(off_calendar), 'date')} with rows {are}: {_dates_text(off_calendar)}")
    return out


MIN_SNAPSHOTS = 4


@problem_kind("short_session", f"sessions with fewer than {MIN_SNAPSHOTS} snapshots in gex_history or "
                               "gamma_history (a session computed from an imported end-of-day chain has its close "
                               "snapshot only, by design, and is not short)")
def _short_sessions(f: Facts) -> list[str]:
    out = []
    for name, counts in f.snapshots.items():
        held = f.summary_days | set(counts)  # a session with no rows at all is a gap, not a short session
        short = [d for d in f.calendar if d in held and counts.get(d, 0) < MIN_SNAPSHOTS
                 and not (d in f.end_of_day_imports and counts.get(d, 0) == 1)]
        if short:
            out.append(f"{plural(len(short), 'session')} with fewer than {MIN_SNAPSHOTS} snapshots in {name}: "
                       f"{_dates_text(short)}")
    return out


# Columns every stored snapshot or summary has a computed value for, modelled or real. Columns that are
# NULL by design (flip_point when net GEX does not cross zero within +-20% of spot, the 20-session
# correlation before 20 sessions exist, outcome columns before they are known) are not listed.
IMPORTANT_COLUMNS = {
    "gex_history": ("net_gex", "spot_price", "call_gex", "put_gex", "call_wall", "put_wall", "regime", "mm_state"),
    "gamma_history": ("net_gex", "spot_price", "implied_volatility", "put_call_ratio", "max_pain"),
    "gamma_daily_summary": ("open_gex", "close_gex", "open_price", "close_price", "avg_iv"),
}
NULL_SHARE_LIMIT = 0.05  # a listed column more than 5% NULL for a symbol is a problem
_BY_NAME = {t.name: t for t in (gex_history, gamma_history, gamma_daily_summary)}


def null_shares(conn, table, symbol: str, columns) -> tuple[int, dict[str, float]]:
    """Rows of `symbol` in `table` and, per column, the share of them that are NULL."""
    cols = [table.c[c] for c in columns]
    n, *present = conn.execute(select(func.count(), *[func.count(c) for c in cols]).where(table.c.symbol == symbol)).one()
    n = int(n)
    return n, {c: (1.0 - p / n if n else 0.0) for c, p in zip(columns, present)}


@problem_kind("null_heavy", "a column that always has a computed value (net/call/put GEX, spot, walls, regime, IV, "
                            f"put/call ratio, max pain, summary open/close) NULL in more than {NULL_SHARE_LIMIT:.0%} "
                            "of a symbol's rows")
def _null_heavy(f: Facts) -> list[str]:
    out = []
    for name, cols in IMPORTANT_COLUMNS.items():
        n, shares = null_shares(f.conn, _BY_NAME[name], f.symbol, cols)
        out += [f"{name}.{col} is NULL in {share:.0%} of {plural(n, 'row')} (limit {NULL_SHARE_LIMIT:.0%})"
                for col, share in shares.items() if n and share > NULL_SHARE_LIMIT]
    return out


# Robust z-score of net GEX on the symbol's own history: 0.6745 * (x - median) / MAD. Net GEX is
# heavy-tailed (it scales with S^2 and with open interest, which grows over years), so the limit is
# far above a normal's 3.5; ten years of every symbol of the synthetic market stay well inside it.
OUTLIER_Z_LIMIT = 25.0


def net_gex_history(conn, symbol: str):
    q = select(gex_history.c.timestamp, gex_history.c.net_gex).where(
        gex_history.c.symbol == symbol, gex_history.c.net_gex.is_not(None)).order_by(gex_history.c.timestamp)
    got = conn.execute(q).all()
    return [r[0] for r in got], np.array([r[1] for r in got], dtype=float)


def robust_z(values):
    med = np.median(values)
    mad = np.median(np.abs(values - med))
    if mad == 0:
        return np.zeros_like(values)
    return 0.6745 * (values - med) / mad


@problem_kind("outlier", f"net GEX snapshots whose robust z-score on the symbol's own history, 0.6745 x (x - median) "
                         f"/ MAD, exceeds {OUTLIER_Z_LIMIT:g}")
def _outliers(f: Facts) -> list[str]:
    stamps, gex = net_gex_history(f.conn, f.symbol)
    if gex.size < 20:
        return []
    z = robust_z(gex)
    far = np.flatnonzero(np.abs(z) > OUTLIER_Z_LIMIT)
    if not far.size:
        return []
    worst = int(far[np.argmax(np.abs(z[far]))])
    return [(f"{plural(far.size, 'snapshot')} with net GEX beyond a robust z-score of {OUTLIER_Z_LIMIT:g}; "
             f"worst {stamps[worst]} net_gex={gex[worst]:.4g} (z={z[worst]:.0f})")]


def source_mix(conn, symbol: str) -> dict[str, int]:
    """data_source -> rows of gex_history for `symbol`."""
    q = select(gex_history.c.data_source, func.count()).where(gex_history.c.symbol == symbol).group_by(gex_history.c.data_source)
    return {s: int(n) for s, n in conn.execute(q)}


@problem_kind("mixed_sources", "a symbol holding synthetic snapshots alongside real ones (`--force` a real "
                               "backfill over the window to replace them)")
def _mixed_sources(f: Facts) -> list[str]:
    mix = source_mix(f.conn, f.symbol)
    if "synthetic" not in mix or len(mix) == 1:
        return []
    others = ", ".join(f"{s} ({n:,})" for s, n in sorted(mix.items()) if s != "synthetic")
    return [f"{plural(mix['synthetic'], 'synthetic snapshot')} mixed with real ones from {others}"]


@problem_kind("stale_outcome", "signals whose outcome (price_change_1d/5d/10d, signal_correct) disagrees with the "
                               "stored closes of the sessions after them (any backfill of the symbol recomputes them)")
def _stale_outcomes(f: Facts) -> list[str]:
    sigs, expected = expected_outcomes(f.conn, f.symbol)
    stale = []
    for r, o in zip(sigs, expected):
        # A horizon whose session is not stored is the `gap` kind's to report, not a disagreement.
        wrong = differing(r, o, known_only=True)
        if wrong and r["timestamp"][:10] <= f.last:
            stale.append((r, wrong[0], o.as_dict()[wrong[0]]))
    if not stale:
        return []
    r, key, want = stale[0]
    return [(f"{plural(len(stale), 'signal')} whose outcome disagrees with the stored closes: "
             f"{_dates_text([s['timestamp'] for s, _, _ in stale])}; the first has {key}={r[key]} where the closes "
             f"give {want} (any backfill of {f.symbol} recomputes them)")]
