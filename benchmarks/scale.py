"""Many symbols: the synthetic backfill of N symbols x Y years with --jobs 1 and 2, SQLite and PostgreSQL.

    python benchmarks/scale.py [--symbols 10] [--years 10] [--jobs 1 2] [--backends sqlite postgres]
                               [--pg-url postgresql://postgres@127.0.0.1:5432/test] [--linearity]

Each figure is one `python -m gexhistory backfill` process into a new database (start-up included):
wall time, snapshots per second, and peak memory, the largest resident set of any process of the run
(the CLI or one of its workers; getrusage(RUSAGE_CHILDREN).ru_maxrss of a wrapper process that ran it
alone). A no-op rerun follows each cold run. PostgreSQL runs in a scratch database created on the
server of --pg-url (default: GEXHISTORY_TEST_PG_URL) and dropped afterwards. --linearity adds the
cost ratio of half the symbols and half the years to the full run (2.0 is linear).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = ["SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META",
           "GOOGL", "NDX", "RUT", "SPX", "XLF", "XLE", "GLD", "TLT", "SMH", "ARKK"]

# Runs the command alone and reports its wall time and the peak RSS of its process tree's largest process.
_WRAPPER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t0
print(json.dumps({"rc": p.returncode, "wall": wall, "stdout": p.stdout, "stderr": p.stderr[-2000:],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def run_one(args: list[str], cwd: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for var in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH"):
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-c", _WRAPPER, sys.executable, "-m", "gexhistory", *args],
                         cwd=cwd, env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    if got["rc"] != 0:
        raise SystemExit(f"backfill failed (exit {got['rc']}): {got['stderr']}")
    got["summary"] = json.loads(got["stdout"])
    return got


class Scratch:
    """A database for one run: a new SQLite file, or a new PostgreSQL database dropped on exit."""

    def __init__(self, backend: str, pg_url: str | None, tmp: str):
        self.backend, self.pg_url, self.tmp = backend, pg_url, tmp

    def __enter__(self) -> str:
        if self.backend == "sqlite":
            self.path = Path(self.tmp) / f"scale_{uuid.uuid4().hex[:8]}.db"
            return str(self.path)
        import psycopg

        if not self.pg_url:
            raise SystemExit("PostgreSQL needs --pg-url or GEXHISTORY_TEST_PG_URL")
        self.admin = self.pg_url.replace("postgresql+psycopg://", "postgresql://")
        self.name = f"gexh_scale_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return f"{self.admin.rsplit('/', 1)[0]}/{self.name}"

    def __exit__(self, *exc) -> None:
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def measure(backend: str, jobs: int, symbols: list[str], days: int, pg_url: str | None, tmp: str) -> dict:
    args = ["backfill", "--symbols", ",".join(symbols), "--days", str(days), "--source", "synthetic",
            "--jobs", str(jobs), "--json"]
    with Scratch(backend, pg_url, tmp) as db:
        cold = run_one([*args, "--db", db], tmp)
        rerun = run_one([*args, "--db", db], tmp)
    snaps = cold["summary"]["totals"]["gex_history"]["inserted"]
    assert rerun["summary"]["totals"]["gex_history"]["inserted"] == 0, "a rerun must write nothing"
    sessions = sum(s["sessions_written"] for s in cold["summary"]["symbols"])
    return {"backend": backend, "jobs": jobs, "symbols": len(symbols), "days": days, "sessions": sessions,
            "snapshots": snaps, "wall": cold["wall"], "snap_per_s": snaps / cold["wall"],
            "peak_mb": cold["maxrss_kb"] / 1024, "rerun": rerun["wall"]}


def show(row: dict) -> None:
    print(f"{row['backend']:>8} {row['jobs']:>4} {row['symbols']:>7} {row['days']:>5} {row['sessions']:>8} "
          f"{row['snapshots']:>9} {row['wall']:>8.1f} {row['snap_per_s']:>7.0f} {row['peak_mb']:>7.0f} "
          f"{row['rerun']:>7.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--years", type=float, default=10)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    ap.add_argument("--pg-url", default=os.environ.get("GEXHISTORY_TEST_PG_URL"))
    ap.add_argument("--linearity", action="store_true", help="also run half the symbols and half the years (jobs 1)")
    ns = ap.parse_args()
    if not 1 <= ns.symbols <= len(SYMBOLS):
        raise SystemExit(f"--symbols must be between 1 and {len(SYMBOLS)}")
    symbols = SYMBOLS[:ns.symbols]
    days = int(round(ns.years * 365))
    print(f"{'backend':>8} {'jobs':>4} {'symbols':>7} {'days':>5} {'sessions':>8} {'snapshots':>9} "
          f"{'wall s':>8} {'snap/s':>7} {'peak MB':>7} {'rerun s':>7}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        full: dict[tuple[str, int], dict] = {}
        for backend in ns.backends:
            for jobs in ns.jobs:
                full[(backend, jobs)] = row = measure(backend, jobs, symbols, days, ns.pg_url, tmp)
                show(row)
        if ns.linearity:
            backend = ns.backends[0]
            base = full.get((backend, 1)) or measure(backend, 1, symbols, days, ns.pg_url, tmp)
            half_sym = measure(backend, 1, symbols[:max(1, len(symbols) // 2)], days, ns.pg_url, tmp)
            half_days = measure(backend, 1, symbols, days // 2, ns.pg_url, tmp)
            for row in (half_sym, half_days):
                show(row)
            for label, row in (("symbols", half_sym), ("days", half_days)):
                work = base["sessions"] / row["sessions"]
                print(f"linearity in {label}: {work:.2f}x the sessions cost {base['wall'] / row['wall']:.2f}x "
                      f"the wall time ({backend}, jobs 1; start-up included)")


if __name__ == "__main__":
    main()
