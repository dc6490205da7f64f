"""Whole-row reads for the Python API (gx.history, gx.daily, gx.signals) and for export.

Each reader returns its columns with the kind of value they hold (`Col`) and the rows as tuples, so
the layer above can build typed frames or Arrow batches without knowing the schema: `kind` is one of
float, int, bool, str, timestamp ('YYYY-MM-DD HH:MM:SS' America/New_York text) or date ('YYYY-MM-DD').
Export streams (`stream`): rows come from a server-side cursor on PostgreSQL (psycopg named cursor via
SQLAlchemy's stream_results) and from SQLite's lazy cursor, `chunk_rows` at a time, in key order.
Every statement is SQLAlchemy Core with bound values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Boolean, Column, Engine, Float, Integer, Row, Table, and_, func, literal, or_, select
from sqlalchemy.exc import SQLAlchemyError

from gexhistory.config import database_url, redact_url
from gexhistory.errors import BadDatabase, BadInput
from gexhistory.store.packed import rows_of
from gexhistory.store.queries import has_tables, symbols as stored_symbols
from gexhistory.store.readonly import open_readonly, sqlite_path
from gexhistory.store.schema import (DAY, TS, backfill_runs, gamma_daily_summary, gamma_history, gex_history,
                                     metadata, option_chain_contracts, option_chains, price_bars, regime_signals)

FILL_COMMAND = "gexhistory backfill"


@dataclass(frozen=True)
class Col:
    name: str
    kind: str  # float | int | bool | str | timestamp | date


@dataclass
class Rows:
    columns: list[Col]
    rows: list[tuple]


def kind_of(column: Column) -> str:
    """What a schema column holds. Timestamps and dates are the schema's TS and DAY text types."""
    t = column.type
    if t is TS:
        return "timestamp"
    if t is DAY:
        return "date"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, Integer):
        return "int"
    if isinstance(t, Float):
        return "float"
    return "str"


def _cols(columns) -> list[Col]:
    return [Col(c.name, kind_of(c)) for c in columns]


def open_reader(db: str | None) -> Engine:
    """A read-only Engine on a database that holds gexhistory tables; BadDatabase otherwise."""
    url = database_url(db)
    path = sqlite_path(url)
    if path is not None:
        if not path.exists():
            raise BadDatabase(f"no database at {path}: run {FILL_COMMAND} first")
        if not path.is_file():
            raise BadDatabase(f"database path {path} is not a file")
        with path.open("rb") as fh:
            head = fh.read(16)
        if head != b"SQLite format 3\x00":
            raise BadDatabase(f"{path} is not an SQLite database (corrupt or another kind of file)")
    engine = open_readonly(db)
    try:
        ready = has_tables(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise BadDatabase(f"cannot use database {redact_url(url)}: {first[0] if first else type(exc).__name__}") from None
    if not ready:
        engine.dispose()
        raise BadDatabase(f"the database {redact_url(url)} has no gexhistory tables: run {FILL_COMMAND} first")
    return engine


def known_symbol(engine: Engine, symbol: str) -> str:
    """`symbol` when the database holds snapshots of it (an indexed look-up); BadInput naming the
    stored symbols otherwise. Live snapshots count: a symbol need not have been backfilled."""
    if not symbols_without_rows(engine, "gex_history", [symbol]):
        return symbol
    held = table_symbols(engine, "gex_history")
    if not held:
        raise BadInput(f"no stored history for {symbol}: the database holds no symbols yet (run {FILL_COMMAND})")
    raise BadInput(f"no stored history for {symbol}: the database holds {', '.join(held)}")


def _ts_bounds(start: dt.date | None, end: dt.date | None) -> tuple[str | None, str | None]:
    return (f"{start.isoformat()} 00:00:00" if start else None, f"{end.isoformat()} 23:59:59" if end else None)


def _within(col, lo: str | None, hi: str | None) -> list:
    return ([col >= lo] if lo is not None else []) + ([col <= hi] if hi is not None else [])


# gamma_history repeats gex_history's snapshot values (spot, GEX, flip, walls, regime, provenance) and
# adds its own; a history row carries each column once. `timezone` is always America/New_York, which
# the frame's timestamps carry instead.
HISTORY_GEX = [c for c in gex_history.columns if c.name not in ("id", "timezone")]
HISTORY_GAMMA = [c for c in gamma_history.columns if c.name not in gex_history.columns]


def history(engine: Engine, symbol: str, start: dt.date | None, end: dt.date | None) -> Rows:
    """One row per gex_history snapshot of `symbol` in [start, end], with gamma_history's own columns
    (NULL where a snapshot has no gamma_history row), in time order."""
    g, h = gex_history, gamma_history
    lo, hi = _ts_bounds(start, end)
    q = (select(*HISTORY_GEX, *HISTORY_GAMMA)
         .select_from(g.outerjoin(h, and_(h.c.symbol == g.c.symbol, h.c.timestamp == g.c.timestamp)))
         .where(g.c.symbol == symbol, *_within(g.c.timestamp, lo, hi))
         .order_by(g.c.timestamp))
    with engine.connect() as conn:
        return Rows(_cols(HISTORY_GEX + HISTORY_GAMMA), [tuple(r) for r in conn.execute(q)])


def daily(engine: Engine, symbol: str, start: dt.date | None, end: dt.date | None) -> Rows:
    """gamma_daily_summary rows of `symbol` in [start, end], in date order."""
    s = gamma_daily_summary
    cols = [c for c in s.columns if c.name != "id"]
    q = (select(*cols).where(s.c.symbol == symbol, *_within(s.c.date, start and start.isoformat(),
                                                               end and end.isoformat()))
         .order_by(s.c.date))
    with engine.connect() as conn:
        return Rows(_cols(cols), [tuple(r) for r in conn.execute(q)])


def signals(engine: Engine, symbol: str | None, start: dt.date | None, end: dt.date | None,
            pattern: str | None) -> Rows:
    """regime_signals rows (outcomes included) of `symbol` (every symbol when None) in [start, end],
    of one primary pattern when given, in time then symbol order."""
    s = regime_signals
    cols = [c for c in s.columns if c.name != "id"]
    lo, hi = _ts_bounds(start, end)
    where = _within(s.c.timestamp, lo, hi)
    if symbol is not None:
        where.append(s.c.symbol == symbol)
    if pattern is not None:
        where.append(s.c.primary_regime_type == pattern)
    q = select(*cols).where(*where).order_by(s.c.timestamp, s.c.symbol, s.c.primary_regime_type)
    with engine.connect() as conn:
        return Rows(_cols(cols), [tuple(r) for r in conn.execute(q)])


# ---- export ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Exportable:
    table: Table
    symbol_col: str | None  # the column a symbol filter applies to (backfill_runs lists them in `symbols`)
    time_col: str  # the column a date window applies to
    order: tuple[str, ...]  # the table's key: rows leave in this order, along its index
    packed: bool = False  # one stored row per chain, exported as a row per contract (store/packed.py)


EXPORTABLE = {
    e.table.name: e for e in (
        Exportable(gex_history, "symbol", "timestamp", ("symbol", "timestamp")),
        Exportable(gamma_history, "symbol", "timestamp", ("symbol", "timestamp")),
        Exportable(gamma_daily_summary, "symbol", "date", ("symbol", "date")),
        Exportable(regime_signals, "symbol", "timestamp", ("symbol", "timestamp", "primary_regime_type")),
        Exportable(price_bars, "symbol", "timestamp", ("symbol", "timeframe", "timestamp", "data_source")),
        Exportable(option_chains, "underlying", "as_of", ("underlying", "as_of", "chain_source")),
        Exportable(option_chain_contracts, "underlying", "as_of", ("underlying", "as_of", "chain_source"), packed=True),
        Exportable(backfill_runs, None, "started_at", ("id",)),
    )
}
assert set(EXPORTABLE) == set(metadata.tables), "every table is exportable"


# An exported contract: its chain's key, then the packed stream's columns (store/packed.py), in the
# order the table had when it held a row per contract.
CONTRACT_EXPORT = [Col("underlying", "str"), Col("as_of", "date"), Col("expiration", "date"), Col("strike", "float"),
                   Col("right", "str"), Col("chain_source", "str"), Col("open_interest", "float"), Col("iv", "float"),
                   Col("iv_source", "str"), Col("gamma", "float"), Col("expires_at_open", "bool"),
                   Col("open_interest_at_open", "float"), Col("iv_at_open", "float")]
PACKED_READ_ROWS = 64  # chains read at a time from an export's cursor (one may hold 30,000 contracts)


def export_columns(name: str) -> list[Col]:
    """Every column of table `name` as exported, in schema order (a contract's for option_chain_contracts)."""
    return list(CONTRACT_EXPORT) if EXPORTABLE[name].packed else _cols(EXPORTABLE[name].table.columns)


def _symbol_filter(e: Exportable, symbols: list[str]):
    t = e.table
    if e.symbol_col is not None:
        return t.c[e.symbol_col].in_(symbols)
    # backfill_runs.symbols is 'SPY,QQQ': a run belongs to every symbol it lists. Symbols match
    # config.SYMBOL_RE, so they hold no LIKE wildcard; each pattern is a bound value.
    listed = literal(",") + t.c.symbols + literal(",")
    return or_(*[listed.like(f"%,{s},%") for s in symbols])


def export_select(name: str, symbols: list[str] | None, start: dt.date | None, end: dt.date | None):
    """SELECT every column of `name` for `symbols` (all when None) in [start, end], in key order."""
    e = EXPORTABLE[name]
    t = e.table
    time_col = t.c[e.time_col]
    if kind_of(time_col) == "timestamp":
        lo, hi = _ts_bounds(start, end)
    else:
        lo, hi = start and start.isoformat(), end and end.isoformat()
    where = _within(time_col, lo, hi)
    if symbols is not None:
        where.append(_symbol_filter(e, symbols))
    columns = [t.c.underlying, t.c.as_of, t.c.chain_source, t.c.contract_count, t.c.contracts] if e.packed else t.columns
    return select(*columns).where(*where).order_by(*[t.c[k] for k in e.order])


def symbols_without_rows(engine: Engine, name: str, symbols: list[str]) -> list[str]:
    """Those of `symbols` that table `name` holds no row of (one indexed lookup each)."""
    e = EXPORTABLE[name]
    t = e.table
    missing = []
    with engine.connect() as conn:
        for s in symbols:
            q = select(literal(1)).select_from(t).where(_symbol_filter(e, [s])).limit(1)
            if conn.execute(q).first() is None:
                missing.append(s)
    return missing


def table_symbols(engine: Engine, name: str) -> list[str]:
    """The distinct symbols table `name` holds (for messages; backfill_runs: those of gamma_daily_summary)."""
    e = EXPORTABLE[name]
    if e.symbol_col is None:
        return stored_symbols(engine)
    col = e.table.c[e.symbol_col]
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(col).distinct().order_by(col))]


def count_rows(engine: Engine, stmt, *, packed: bool = False) -> int:
    """How many rows `stmt` selects (what a progress display needs to show a total); `packed`: stmt is
    export_select of option_chain_contracts, whose rows to count are the contracts its chains hold."""
    sub = stmt.order_by(None).subquery()
    total = func.coalesce(func.sum(sub.c.contract_count), 0) if packed else func.count()
    with engine.connect() as conn:
        return int(conn.execute(select(total).select_from(sub)).scalar_one())


def stream(engine: Engine, stmt, chunk_rows: int, *, packed: bool = False) -> Iterator[Sequence[Row]]:
    """The rows of `stmt` (tuple-like Rows), `chunk_rows` at a time, never all in memory: a server-side
    cursor on PostgreSQL, SQLite's cursor stepping through the result. One read transaction for the
    whole stream, so every chunk comes from the same snapshot of the database. `packed`: stmt is
    export_select of option_chain_contracts, and the rows are its chains' contracts (CONTRACT_EXPORT)."""
    with engine.connect() as conn:
        per_read = PACKED_READ_ROWS if packed else chunk_rows
        result = conn.execution_options(stream_results=True, yield_per=per_read).execute(stmt)
        if not packed:
            yield from result.partitions(chunk_rows)
            return
        pending: list[tuple] = []
        for chains in result.partitions(per_read):
            for u, as_of, src, _n, blob in chains:
                pending += [(u, as_of, c[0], c[1], c[2], src, *c[3:]) for c in rows_of(blob)]
            while len(pending) >= chunk_rows:
                yield pending[:chunk_rows]
                pending = pending[chunk_rows:]
        if pending:
            yield pending
