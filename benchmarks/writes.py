"""Database writes of a 3650-day backfill, on SQLite and PostgreSQL (the store's part of a cold run).

    python benchmarks/writes.py [--years 2] [--copies 5] [--repeat 3] [--pg postgresql://postgres@127.0.0.1:5432/test]

The rows are real: `compute_sessions` of the synthetic market over --years, written --copies times
under different symbols, so 2 years x 5 copies has the row count and shapes of one 3650-day run
(~2,500 sessions, ~25,000 rows). They are written the way `_backfill_symbol` writes them: one
transaction per batch of 250 sessions with delete_sessions, live_timestamps and insert_rows for the
four tables. Printed per backend, best of --repeat (timings are noisy on a shared machine):

- cold: every batch into empty tables (what a first run pays);
- force: the same batches again over the stored rows (what --force pays: delete + insert);
- insert only: the cold inserts alone, through writes.insert_rows and through SQLAlchemy's
  insert() executemany with dicts (the reference the store's inserts must equal).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from gexhistory.pipeline.compute import compute_sessions  # noqa: E402
from gexhistory.calendar import last_completed_session, sessions_between  # noqa: E402
from gexhistory.engine.chain_model import ModelParams  # noqa: E402
from gexhistory.engine.exposure import Conventions  # noqa: E402
from gexhistory.sources.synthetic import SyntheticMarket  # noqa: E402
from gexhistory.store import writes  # noqa: E402
from gexhistory.store.schema import SESSION_TABLES  # noqa: E402

SYMBOLS = ("SPY", "QQQ", "IWM", "DIA", "XLF", "XLE", "GLD", "TLT", "EEM", "XLK")
BATCH = 250


def computed_bundles(years: int) -> tuple[list, list[dict]]:
    end = last_completed_session().date
    sessions = sessions_between(end - dt.timedelta(days=365 * years), end)
    bundles = list(compute_sessions(SyntheticMarket(42), "SPY", sessions, Conventions(), ModelParams()))
    return sessions, bundles


def as_symbol(bundles: list[dict], symbol: str) -> list[dict]:
    return [{t.name: [{**r, "symbol": symbol, "run_id": 1} for r in b[t.name]] for t in SESSION_TABLES}
            for b in bundles]


def write_batches(engine, symbol: str, sessions: list, bundles: list[dict]) -> int:
    """The writes of `_backfill_symbol`, batch by batch; returns the rows inserted."""
    n = 0
    for lo in range(0, len(sessions), BATCH):
        dates = [s.date for s in sessions[lo:lo + BATCH]]
        with engine.begin() as conn:
            writes.lock_symbol(conn, symbol)
            writes.delete_sessions(conn, symbol, dates)
            live = writes.live_timestamps(conn, symbol, dates)
            for t in SESSION_TABLES:
                rows = [r for b in bundles[lo:lo + BATCH] for r in b[t.name] if r.get("timestamp") not in live]
                n += writes.insert_rows(conn, t, rows)
    return n


def insert_only(engine, per_symbol: dict[str, list[dict]], insert) -> int:
    n = 0
    for bundles in per_symbol.values():
        for lo in range(0, len(bundles), BATCH):
            with engine.begin() as conn:
                for t in SESSION_TABLES:
                    rows = [r for b in bundles[lo:lo + BATCH] for r in b[t.name]]
                    insert(conn, t, rows)
                    n += len(rows)
    return n


def sqlalchemy_insert(conn, table, rows) -> None:
    from sqlalchemy import insert

    if rows:
        conn.execute(insert(table), rows)


def clear(engine) -> None:
    from sqlalchemy import delete

    with engine.begin() as conn:
        for t in SESSION_TABLES:
            conn.execute(delete(t))


def timed(fn) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn()
    return time.perf_counter() - t0, n


def bench(label: str, db: str, sessions: list, per_symbol: dict[str, list[dict]], repeat: int) -> None:
    from gexhistory.store.db import init_schema, open_engine

    engine = open_engine(db)
    init_schema(engine)
    figures: dict[str, float] = {}
    rows = 0
    for _ in range(repeat):
        clear(engine)
        cold, rows = timed(lambda: sum(write_batches(engine, s, sessions, b) for s, b in per_symbol.items()))
        force, _ = timed(lambda: sum(write_batches(engine, s, sessions, b) for s, b in per_symbol.items()))
        clear(engine)
        ours, _ = timed(lambda: insert_only(engine, per_symbol, writes.insert_rows))
        clear(engine)
        ref, _ = timed(lambda: insert_only(engine, per_symbol, sqlalchemy_insert))
        for k, v in (("cold", cold), ("force", force), ("insert_rows", ours), ("sqlalchemy", ref)):
            figures[k] = min(figures.get(k, v), v)
    clear(engine)
    engine.dispose()
    print(f"{label:<10} {len(per_symbol) * len(sessions):>8} {rows:>7} {figures['cold']:>8.3f} {figures['force']:>8.3f} "
          f"{figures['insert_rows']:>12.3f} {figures['sqlalchemy']:>11.3f}")


def pg_database(admin: str):
    import psycopg

    name = f"gexh_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name, name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--years", type=int, default=2)
    ap.add_argument("--copies", type=int, default=5, help="symbols the computed rows are written under")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg", default=os.environ.get("GEXHISTORY_TEST_PG_URL"), help="admin URL; a scratch database is made")
    ns = ap.parse_args()
    t0 = time.perf_counter()
    sessions, bundles = computed_bundles(ns.years)
    per_symbol = {s: as_symbol(bundles, s) for s in SYMBOLS[:ns.copies]}
    print(f"computed {len(sessions)} sessions in {time.perf_counter() - t0:.1f}s; written as {ns.copies} symbols")
    print(f"{'backend':<10} {'sessions':>8} {'rows':>7} {'cold s':>8} {'force s':>8} {'insert_rows s':>12} "
          f"{'sqlalchemy s':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        bench("sqlite", str(Path(tmp) / "writes.db"), sessions, per_symbol, ns.repeat)
    if ns.pg:
        import psycopg

        url, name = pg_database(ns.pg)
        try:
            bench("postgresql", url, sessions, per_symbol, ns.repeat)
        finally:
            with psycopg.connect(ns.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
