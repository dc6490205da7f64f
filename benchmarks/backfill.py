"""Whole-process wall time of the synthetic backfill on SQLite (SPEC §9).

    python benchmarks/backfill.py [--days 365 3650]

Prints, for each window: a cold run into a new database, a no-op rerun, and snapshots per second.
Each figure is one `python -m gexhistory backfill` process, start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str], cwd: str) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for var in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH"):
        env.pop(var, None)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gexhistory", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, nargs="+", default=[365, 3650])
    ns = ap.parse_args()
    print(f"{'days':>6} {'sessions':>8} {'snapshots':>9} {'cold s':>8} {'snap/s':>8} {'rerun s':>8}")
    for days in ns.days:
        with tempfile.TemporaryDirectory() as tmp:
            args = ["backfill", "--days", str(days), "--source", "synthetic", "--json", "--db", "bench.db"]
            cold, summary = timed(args, tmp)
            rerun, again = timed(args, tmp)
            snaps = summary["totals"]["gex_history"]["inserted"]
            assert again["totals"]["gex_history"]["inserted"] == 0
            sessions = summary["symbols"][0]["sessions_written"]
            print(f"{days:>6} {sessions:>8} {snaps:>9} {cold:>8.2f} {snaps / cold:>8.0f} {rerun:>8.2f}")


if __name__ == "__main__":
    main()
