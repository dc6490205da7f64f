"""What "consistent" and "the same content" mean for the reliability tests, on SQLite and PostgreSQL.

`content_digest` is a canonical dump of every table except the run log (backfill_runs), without the
columns that differ between runs by design (id, run_id, created_at), rows sorted, values in one
representation on both backends; the sha256 of that dump is what the tests compare.
`session_problems` lists every way a session could be half-written.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from helpers import engine_for, rows

RUN_COLUMNS = ("id", "run_id", "created_at")
CONTENT_TABLES = ("gex_history", "gamma_history", "gamma_daily_summary", "regime_signals", "price_bars")


def _canon(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return repr(value)
    return value


def content_dump(db: str) -> dict[str, list[list]]:
    """{table: sorted rows} through the SQLAlchemy types, so booleans and floats read alike on both backends."""
    from sqlalchemy import inspect, select

    from gexhistory.store.schema import metadata

    eng = engine_for(db)
    out: dict[str, list[list]] = {}
    with eng.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for name in CONTENT_TABLES:
            if name not in present:
                out[name] = []
                continue
            table = metadata.tables[name]
            cols = [c for c in table.columns if c.name not in RUN_COLUMNS]
            got = [[_canon(v) for v in r] for r in conn.execute(select(*cols))]
            out[name] = sorted(got, key=lambda r: json.dumps(r))
    eng.dispose()
    return out


def content_digest(db: str) -> tuple[str, dict[str, int]]:
    dump = content_dump(db)
    blob = json.dumps(dump, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest(), {t: len(r) for t, r in dump.items()}


def file_sha256(path: str | Path) -> str | None:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def sqlite_integrity(path: str) -> list[str]:
    """PRAGMA integrity_check and foreign_key_check; [] when both are clean."""
    conn = sqlite3.connect(path)
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {r}" for r in conn.execute("PRAGMA foreign_key_check")]
    finally:
        conn.close()
    return problems


def session_problems(db: str) -> list[str]:
    """Every session must be whole: its summary row, exactly snapshots_count rows in each snapshot
    table, signals only on complete sessions, and no (symbol, time) twice."""
    if not _has_table(db, "gamma_daily_summary"):
        return []
    problems: list[str] = []
    summary = {(s, d): n for s, d, n in rows(db, "SELECT symbol, date, snapshots_count FROM gamma_daily_summary")}
    for table in ("gex_history", "gamma_history"):
        per_day = {(s, d): n for s, d, n in rows(
            db, f"SELECT symbol, substr(timestamp, 1, 10), COUNT(*) FROM {table} GROUP BY symbol, substr(timestamp, 1, 10)")}
        for key, n in per_day.items():
            if key not in summary:
                problems.append(f"{table}: {n} snapshots of {key} without its daily summary")
            elif n != summary[key]:
                problems.append(f"{table}: {key} has {n} snapshots, its summary says {summary[key]}")
        for key, n in summary.items():
            if key not in per_day:
                problems.append(f"gamma_daily_summary: {key} has no rows in {table}")
        dup = rows(db, f"SELECT COUNT(*) - COUNT(DISTINCT symbol || timestamp) FROM {table}")[0][0]
        if dup:
            problems.append(f"{table}: {dup} duplicate (symbol, timestamp) rows")
    for s, d in rows(db, "SELECT DISTINCT symbol, substr(timestamp, 1, 10) FROM regime_signals"):
        if (s, d) not in summary:
            problems.append(f"regime_signals: signal on {s} {d}, a session that is not complete")
    return problems


def _has_table(db: str, name: str) -> bool:
    from sqlalchemy import inspect

    eng = engine_for(db)
    try:
        return name in inspect(eng).get_table_names()
    finally:
        eng.dispose()


def runs(db: str) -> list[tuple]:
    """backfill_runs as (id, status, pid, message), oldest first; [] before the first run."""
    if not _has_table(db, "backfill_runs"):
        return []
    return rows(db, "SELECT id, status, pid, message FROM backfill_runs ORDER BY id")
