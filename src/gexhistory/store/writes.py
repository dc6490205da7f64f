"""Session-atomic writes: a session's rows in all four tables go in together or not at all.

A session is complete for a symbol exactly when its gamma_daily_summary row exists, because that row
is written in the same transaction as the session's snapshots and signals.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import zlib
from typing import NamedTuple

from sqlalchemy import Connection, Engine, and_, delete, exists, func, insert, select, update

from gexhistory.store.bulk import insert_many
from gexhistory.store.members import IN_LIST_MAX, one_of
from gexhistory.store.schema import (
    SESSION_TABLES,
    backfill_runs,
    gamma_daily_summary,
    gamma_history,
    gex_history,
    option_chains,
)


def lock_symbol(conn: Connection, symbol: str) -> None:
    """Serialise writers of one symbol. SQLite's BEGIN IMMEDIATE already does; PostgreSQL needs a lock."""
    lock_symbols(conn, [symbol])


def lock_symbols(conn: Connection, symbols) -> None:
    """lock_symbol for many symbols in one round trip (an import of a whole market's file holds
    thousands), taken in the order of their lock keys."""
    if conn.dialect.name == "postgresql":
        keys = sorted({zlib.crc32(s.encode()) for s in symbols})
        # pg_advisory_xact_lock is volatile: PostgreSQL calls it after the sort, key by key.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS t(k) ORDER BY k", (keys,))


class Held(NamedTuple):
    """A complete stored session: the data_source its rows carry and how many snapshots it has."""

    source: str
    snapshots: int


def complete_sessions(engine: Engine, symbol: str, start: dt.date, end: dt.date) -> dict[dt.date, Held]:
    """Dates in [start, end] whose session is complete for `symbol`, with what they hold."""
    t = gamma_daily_summary
    q = select(t.c.date, t.c.data_source, t.c.snapshots_count).where(
        t.c.symbol == symbol, t.c.date >= start.isoformat(), t.c.date <= end.isoformat()
    )
    with engine.connect() as conn:
        return {dt.date.fromisoformat(d): Held(src, n or 0) for d, src, n in conn.execute(q).all()}


def complete_sessions_locked(conn: Connection, symbol: str, dates: list[dt.date]) -> dict[dt.date, Held]:
    """Like complete_sessions, read inside the writer's transaction after lock_symbol.

    The first read happens before any lock, so a concurrent run may have completed some of these
    sessions since; reading again under the lock lets the caller skip them instead of replacing them.
    """
    if not dates:
        return {}
    t = gamma_daily_summary
    q = select(t.c.date, t.c.data_source, t.c.snapshots_count).where(
        t.c.symbol == symbol, t.c.date.in_([d.isoformat() for d in dates]))
    return {dt.date.fromisoformat(d): Held(src, n or 0) for d, src, n in conn.execute(q)}


def held_symbols(engine: Engine, symbols: list[str]) -> set[str]:
    """Those of `symbols` with at least one stored snapshot or daily summary (each table's unique key
    starts with the symbol, so this reads an index, not the rows)."""
    with engine.connect() as conn:
        return {s for t in (gamma_daily_summary, gex_history) for among in one_of(conn, t.c.symbol, symbols)
                for (s,) in conn.execute(select(t.c.symbol).distinct().where(among))}


def imported_chain_dates(engine: Engine, underlying: str, start: dt.date, end: dt.date) -> set[dt.date]:
    """The as-of dates in [start, end] for which a real option chain of `underlying` was imported."""
    h = option_chains
    q = select(h.c.as_of).distinct().where(h.c.underlying == underlying, h.c.as_of >= start.isoformat(),
                                           h.c.as_of <= end.isoformat())
    with engine.connect() as conn:
        return {dt.date.fromisoformat(d) for (d,) in conn.execute(q)}


def delete_sessions(conn: Connection, symbol: str, dates: list[dt.date]) -> dict[str, int]:
    """Remove everything stored for these sessions of `symbol` (live snapshots excepted); returns rows
    removed per table. One existence query first: a first run, which has nothing to remove, stops there."""
    removed = {t.name: 0 for t in SESSION_TABLES}
    if not dates:
        return removed
    days = sorted({d.isoformat() for d in dates})
    for table in _tables_holding(conn, symbol, days[0], days[-1]):
        for lo in range(0, len(days), IN_LIST_MAX):
            # One statement per chunk, not an executemany: its rowcount is what it removed on every driver.
            stmt = delete(table).where(_on_days(table, symbol, days[lo:lo + IN_LIST_MAX]))
            removed[table.name] += conn.execute(stmt).rowcount
    return removed


def _in_span(table, symbol: str, first: str, last: str):
    """The rows of `table` for `symbol` from day `first` to day `last` ('YYYY-MM-DD'); live snapshots never.
    A range on the key's second column, so the (symbol, timestamp|date) unique index finds them."""
    t = table.c
    if table is gamma_daily_summary:
        return and_(t.symbol == symbol, t.date >= first, t.date <= last)
    return and_(t.symbol == symbol, t.timestamp >= f"{first} 00:00:00", t.timestamp <= f"{last} 23:59:59",
                t.chain_source.not_in(LIVE_CHAIN_SOURCES))


def _on_days(table, symbol: str, days: list[str]):
    """The rows of `table` for `symbol` on these days (sorted 'YYYY-MM-DD'); live snapshots never."""
    day = table.c.date if table is gamma_daily_summary else func.substr(table.c.timestamp, 1, 10)
    return and_(_in_span(table, symbol, days[0], days[-1]), day.in_(days))


def symbols_holding(conn: Connection, symbols: list[str], first: dt.date, last: dt.date) -> set[str]:
    """Those of `symbols` holding session rows (live snapshots aside) between two days: the only ones
    delete_sessions can remove anything for. One query per table and members.one_of condition, so a
    first import of thousands of symbols asks once, not once per symbol."""
    out: set[str] = set()
    for table in SESSION_TABLES:
        t = table.c
        if table is gamma_daily_summary:
            span = and_(t.date >= first.isoformat(), t.date <= last.isoformat())
        else:
            span = and_(t.timestamp >= f"{first.isoformat()} 00:00:00",
                        t.timestamp <= f"{last.isoformat()} 23:59:59", t.chain_source != LIVE_CHAIN_SOURCE)
        for among in one_of(conn, t.symbol, symbols):
            q = select(t.symbol).distinct().where(among, span)
            out.update(s for (s,) in conn.execute(q))
    return out


def _tables_holding(conn: Connection, symbol: str, first: str, last: str) -> list:
    """The session tables holding rows of `symbol` (not live snapshots) between two days, in one query."""
    checks = [exists().where(_in_span(t, symbol, first, last)).label(t.name) for t in SESSION_TABLES]
    flags = conn.execute(select(*checks)).one()
    return [table for table, held in zip(SESSION_TABLES, flags) if held]


def insert_rows(conn: Connection, table, rows: list[dict]) -> int:
    """Insert rows (dicts with the same keys) in one executemany; returns how many (store/bulk.py)."""
    return insert_many(conn, table, rows)


def start_run(engine: Engine, command: str, symbols: list[str], start: dt.date | None, end: dt.date | None,
              data_source: str, parameters: dict, versions: dict, started_at: str) -> int:
    host = socket.gethostname()
    with engine.begin() as conn:
        mark_stale_runs(conn, host, started_at)
        res = conn.execute(
            insert(backfill_runs).values(
                command=command, symbols=",".join(symbols),
                start_date=start.isoformat() if start else None, end_date=end.isoformat() if end else None,
                data_source=data_source, parameters=json.dumps(parameters, sort_keys=True, default=str),
                versions=json.dumps(versions, sort_keys=True), started_at=started_at, status="running",
                pid=os.getpid(), host=host,
            )
        )
        return int(res.inserted_primary_key[0])


def mark_stale_runs(conn: Connection, host: str, now: str) -> int:
    """Mark 'running' rows of this host whose process no longer exists as 'interrupted'.

    A run killed with SIGKILL (or by a power cut) cannot record its own end, so the next run does.
    Rows of other hosts, or whose process is alive, are left alone: they may really be running.
    """
    t = backfill_runs
    stale = [
        (rid, pid) for rid, pid in conn.execute(
            select(t.c.id, t.c.pid).where(t.c.status == "running", t.c.host == host, t.c.pid.is_not(None))
        )
        if not _process_alive(int(pid))
    ]
    for rid, pid in stale:
        conn.execute(
            update(t).where(t.c.id == rid, t.c.status == "running").values(
                status="interrupted", finished_at=now,
                message=f"process {pid} ended without recording its end (killed); marked by a later run",
            )
        )
    return len(stale)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:  # a zombie has exited; only its parent has not collected it yet
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def finish_run(engine: Engine, run_id: int, status: str, counts: dict, finished_at: str, message: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(backfill_runs).where(backfill_runs.c.id == run_id).values(
                status=status, counts=json.dumps(counts, sort_keys=True), finished_at=finished_at, message=message
            )
        )


# Live snapshots (gexhistory snapshot) are real chains taken at the time: a backfill of their session
# keeps them, and a modelled snapshot never takes a live one's timestamp.
LIVE_CHAIN_SOURCE = "massive_snapshot"
LIVE_CHAIN_SOURCES = (LIVE_CHAIN_SOURCE, "cboe_delayed")  # Massive's chain snapshot, Cboe's delayed quotes


def replace_at_timestamp(conn: Connection, symbol: str, timestamp: str, rows: dict[str, list[dict]]) -> int:
    """Put one snapshot's rows at (symbol, timestamp) in gex_history and gamma_history, replacing what
    was there; returns the rows replaced."""
    replaced = 0
    for t in (gex_history, gamma_history):
        replaced += conn.execute(delete(t).where(t.c.symbol == symbol, t.c.timestamp == timestamp)).rowcount or 0
        insert_rows(conn, t, rows.get(t.name, []))
    return replaced


def live_timestamps(conn: Connection, symbol: str, dates: list[dt.date]) -> set[str]:
    """Timestamps of live snapshots of `symbol` on these dates."""
    if not dates:
        return set()
    t = gex_history
    q = select(t.c.timestamp).where(
        t.c.symbol == symbol, t.c.chain_source.in_(LIVE_CHAIN_SOURCES),
        t.c.timestamp >= f"{min(dates).isoformat()} 00:00:00", t.c.timestamp <= f"{max(dates).isoformat()} 23:59:59")
    return {ts for (ts,) in conn.execute(q)}
