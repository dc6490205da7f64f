"""Whole-process wall time of the synthetic backfill on SQLite (SPEC §9).

    python benchmarks/backfill.py [--days 365 3650] [--repeat 3]

Prints, for each window: a cold run into a new database, a no-op rerun, snapshots per second, and the
peak RSS of the cold run's process. Each figure is one `python -m gexhistory backfill` process,
start-up included; with --repeat N the best of N (on a shared machine the minimum is the least
disturbed run).
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


def timed(args: list[str], cwd: str) -> tuple[float, dict, float]:
    """Wall seconds, the --json summary, and the child's peak RSS in MiB (from wait4)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for var in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH"):
        env.pop(var, None)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "gexhistory", *args], cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"backfill failed ({proc.returncode}): {err.read().decode()[-2000:]}")
        out.seek(0)
        return wall, json.loads(out.read()), usage.ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, nargs="+", default=[365, 3650])
    ap.add_argument("--repeat", type=int, default=1, help="runs per figure; the best is printed")
    ns = ap.parse_args()
    print(f"{'days':>6} {'sessions':>8} {'snapshots':>9} {'cold s':>8} {'snap/s':>8} {'rerun s':>8} {'peak MiB':>8}")
    for days in ns.days:
        colds, reruns, rss = [], [], []
        for _ in range(max(1, ns.repeat)):
            with tempfile.TemporaryDirectory() as tmp:
                args = ["backfill", "--days", str(days), "--source", "synthetic", "--json", "--db", "bench.db"]
                cold, summary, peak = timed(args, tmp)
                rerun, again, _ = timed(args, tmp)
                snaps = summary["totals"]["gex_history"]["inserted"]
                assert again["totals"]["gex_history"]["inserted"] == 0
                sessions = summary["symbols"][0]["sessions_written"]
                colds.append(cold)
                reruns.append(rerun)
                rss.append(peak)
        cold, rerun = min(colds), min(reruns)
        print(f"{days:>6} {sessions:>8} {snaps:>9} {cold:>8.2f} {snaps / cold:>8.0f} {rerun:>8.2f} {max(rss):>8.0f}")


if __name__ == "__main__":
    main()
