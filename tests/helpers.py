"""Small helpers shared by tests: run the CLI as a user would, and read tables back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cwd: Path, env: dict | None = None, script: str | None = None,
            merge: bool = False) -> subprocess.CompletedProcess:
    """`python -m gexhistory ARGS` (or a root script of the guide) in `cwd`, with this checkout's code;
    `merge`: stderr into stdout, in the order the two were written."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH")}
    full_env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    # No timed progress lines (import-chains, validate, export) unless a test asks for them: with the
    # suite on every core a loaded machine passes the one-second throttle, and "reading chain files:
    # 1/2 files (1.4s)" would come before the one error line a test compares. A backfill's lines, one
    # per batch, are not timed.
    full_env["GEXHISTORY_PROGRESS_SECONDS"] = "3600"
    full_env.update(env or {})
    cmd = [sys.executable, str(REPO / script)] if script else [sys.executable, "-m", "gexhistory"]
    return subprocess.run(cmd + args, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if merge else subprocess.PIPE, text=True, timeout=300)


def engine_for(db: str):
    from gexhistory.config import database_url

    return create_engine(database_url(db))


def rows(db: str, sql: str, **params) -> list[tuple]:
    eng = engine_for(db)
    with eng.connect() as conn:
        out = [tuple(r) for r in conn.execute(text(sql), params)]
    eng.dispose()
    return out


def table_digest(db: str, table: str, symbol: str, exclude=("id", "run_id", "created_at")) -> list[tuple]:
    """Every row of `table` for `symbol` minus run-specific columns, in key order."""
    from gexhistory.store.schema import metadata

    cols = [c.name for c in metadata.tables[table].columns if c.name not in exclude]
    order = "date" if table == "gamma_daily_summary" else "timestamp"
    return rows(db, f"SELECT {', '.join(cols)} FROM {table} WHERE symbol = :s ORDER BY {order}", s=symbol)


def contract_rows(db: str, sql: str, **params) -> list[tuple]:
    """`sql` run on the contracts as a user exports them (`gx.export("option_chain_contracts", ...)`:
    a row per contract, though the database keeps a packed row per chain), loaded into an in-memory
    SQLite table of the same name; dates as 'YYYY-MM-DD' text, as they are in the export's CSV."""
    import sqlite3
    import tempfile

    import pyarrow.parquet as pq

    import gexhistory as gx

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "contracts.parquet"
        gx.export("option_chain_contracts", out, db=db)
        table = pq.read_table(out)
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    for name in ("as_of", "expiration"):
        cols[name] = [d.isoformat() for d in cols[name]]
    mem = sqlite3.connect(":memory:")
    names = list(cols)
    mem.execute(f"CREATE TABLE option_chain_contracts ({', '.join(repr(n) for n in names)})")
    mem.executemany(f"INSERT INTO option_chain_contracts VALUES ({', '.join('?' * len(names))})", zip(*cols.values()))
    out_rows = [tuple(r) for r in mem.execute(sql, params)]
    mem.close()
    return out_rows
