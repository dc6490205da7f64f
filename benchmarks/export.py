"""Export speed and memory: `gexhistory export` of a 10-symbol x 10-year database, SQLite and PostgreSQL.

    python benchmarks/export.py [--symbols 10] [--years 10] [--backends sqlite postgres]
                                [--minute-sessions 500] [--pg-url postgresql://postgres@127.0.0.1:5432/test]
                                [--progress]

Builds the database with one synthetic `gexhistory backfill` (all symbols, Y years), then adds
regular-hours minute bars to price_bars for the last --minute-sessions sessions of every symbol (what a
Massive backfill stores; synthetic runs store none), so one table has millions of rows. Each figure is
one `python -m gexhistory export` process (start-up included): rows, wall time, rows per second, file
size, and its peak resident memory (getrusage(RUSAGE_CHILDREN).ru_maxrss of a wrapper that ran it
alone). The same export of one symbol shows what memory does as the table grows tenfold: streaming
keeps it flat. For comparison, `pandas.read_sql` of the whole table (the in-memory way) is measured
the same way. Not a timed test: figures on a shared machine move by tens of percent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "src")]  # this checkout's package, and benchmarks/scale.py
from scale import REPO, SYMBOLS, Scratch  # noqa: E402  (the scratch databases of benchmarks/scale.py)

from gexhistory.calendar import last_completed_session, sessions_before  # noqa: E402
from gexhistory.store.db import open_engine  # noqa: E402
from gexhistory.store.schema import price_bars  # noqa: E402

_WRAPPER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": p.returncode, "wall": time.perf_counter() - t0, "stdout": p.stdout,
                  "stderr": p.stderr[-2000:], "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

# The in-memory way, for comparison: the whole table read into one DataFrame, then written.
_READ_ALL = """
import sys
import pandas as pd
from sqlalchemy import create_engine
from gexhistory.config import database_url
df = pd.read_sql_table(sys.argv[2], create_engine(database_url(sys.argv[1])))
df.to_parquet(sys.argv[3])
print(len(df))
"""


def measure(args: list[str], cwd: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for var in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH"):
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-c", _WRAPPER, sys.executable, *args], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    if got["rc"] != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed (exit {got['rc']}): {got['stderr']}")
    return got


def add_minute_bars(db: str, symbols: list[str], sessions: int) -> int:
    """Regular-hours minute bars of the last `sessions` sessions per symbol, labelled as a test feed."""
    days = sessions_before(last_completed_session().date, sessions - 1) + [last_completed_session()]
    engine = open_engine(db)
    n = 0
    for k, symbol in enumerate(symbols):
        for lo in range(0, len(days), 50):  # 50 sessions per transaction: ~20k rows in memory at a time
            rows = []
            for d, s in enumerate(days[lo:lo + 50], start=lo):
                for m in range(int((s.close - s.open).total_seconds() // 60)):
                    p = 100 + 10 * k + 0.01 * ((d * 391 + m) % 977)
                    rows.append({"symbol": symbol, "timeframe": "1m",
                                 "timestamp": (s.open + dt.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S"),
                                 "open": p, "high": p + 0.05, "low": p - 0.05, "close": p + 0.01,
                                 "volume": 1000.0 + m, "vwap": p, "trades": 10 + m, "close_only": False,
                                 "data_source": "benchmark"})
            with engine.begin() as conn:
                conn.execute(price_bars.insert(), rows)
            n += len(rows)
    engine.dispose()
    return n


def progress_cost(db: str, tmp: str, repeat: int) -> None:
    """The same whole-table export with --json (no progress) and without (its rows counted first for the
    total, then a progress line on stderr every second), best of `repeat` processes each."""
    from gexhistory.store import frames  # lazy: only this measurement reads the database in-process

    print(f"{'table':<20} {'rows':>10} {'--json s':>9} {'progress s':>10} {'difference':>10} {'count s':>8}")
    engine = frames.open_reader(db)
    for table in ("gex_history", "price_bars"):
        query = frames.export_select(table, None, None, None)
        counted = []
        for _ in range(repeat):  # the one extra query progress costs: the total
            t0 = time.perf_counter()
            frames.count_rows(engine, query)
            counted.append(time.perf_counter() - t0)
        best = {}
        for shown in (False, True):
            args = ["-m", "gexhistory", "export", "--table", table, "--out", str(Path(tmp) / f"{table}.parquet"),
                    "--force", "--db", db, *([] if shown else ["--json"])]
            runs = [measure(args, tmp) for _ in range(repeat)]
            best[shown] = min(r["wall"] for r in runs)
            if not shown:
                rows = json.loads(runs[0]["stdout"])["rows"]
        print(f"{table:<20} {rows:>10,} {best[False]:>9.2f} {best[True]:>10.2f} {best[True] - best[False]:>+10.2f} "
              f"{min(counted):>8.3f}")
    engine.dispose()


def run_backend(backend: str, symbols: list[str], years: int, minute_sessions: int, pg_url: str | None,
                progress_only: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp, Scratch(backend, pg_url, tmp) as db:
        t0 = time.perf_counter()
        measure(["-m", "gexhistory", "backfill", "--symbols", ",".join(symbols), "--days", str(365 * years),
                 "--source", "synthetic", "--quiet", "--db", db], tmp)
        bars = add_minute_bars(db, symbols, minute_sessions) if minute_sessions else 0
        print(f"\n{backend}: {len(symbols)} symbols x {years} years backfilled, {bars:,} minute bars added "
              f"({time.perf_counter() - t0:.0f} s)")
        if progress_only:
            progress_cost(db, tmp, repeat=3)
            return
        print(f"{'table':<20} {'format':<8} {'symbols':>7} {'rows':>10} {'wall s':>7} {'rows/s':>10} "
              f"{'MiB file':>8} {'peak RSS MiB':>12}")
        for table in ("gex_history", "gamma_history", "regime_signals", "price_bars"):
            for fmt in ("parquet", "csv"):
                for which in (symbols[:1], symbols):
                    out = Path(tmp) / f"{table}.{fmt}"
                    got = measure(["-m", "gexhistory", "export", "--table", table, "--symbols", ",".join(which),
                                   "--out", str(out), "--force", "--json", "--db", db], tmp)
                    res = json.loads(got["stdout"])
                    print(f"{table:<20} {fmt:<8} {len(which):>7} {res['rows']:>10,} {got['wall']:>7.2f} "
                          f"{res['rows'] / got['wall']:>10,.0f} {res['bytes'] / 2**20:>8.1f} "
                          f"{got['maxrss_kb'] / 1024:>12.0f}")
        for table in ("gex_history", "price_bars"):
            got = measure(["-c", _READ_ALL, db, table, str(Path(tmp) / "all.parquet")], tmp)
            rows = int(got["stdout"].strip())
            print(f"{table:<20} {'read_sql':<8} {len(symbols):>7} {rows:>10,} {got['wall']:>7.2f} "
                  f"{rows / got['wall']:>10,.0f} {'':>8} {got['maxrss_kb'] / 1024:>12.0f}   (whole table in memory)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--minute-sessions", type=int, default=500, help="sessions of minute bars per symbol (0: none)")
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    ap.add_argument("--pg-url", default=os.environ.get("GEXHISTORY_TEST_PG_URL"))
    ap.add_argument("--progress", action="store_true",
                    help="only what the progress display costs: each whole table with --json and without")
    a = ap.parse_args()
    for backend in a.backends:
        run_backend(backend, SYMBOLS[:a.symbols], a.years, a.minute_sessions, a.pg_url, a.progress)


if __name__ == "__main__":
    main()
