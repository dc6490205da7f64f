"""Whole-process wall time of the synthetic backfill on SQLite (the targets in the README's Performance section).

    python benchmarks/backfill.py [--days 365 3650] [--repeat 3] [--instructions]

Prints, for each window: a cold run into a new database, a no-op rerun, snapshots per second, and the
peak RSS of the cold run's process. Each figure is one `python -m gexhistory backfill` process,
start-up included; with --repeat N the best of N (on a shared machine the minimum is the least
disturbed run). --instructions adds the instructions one no-op rerun executes, counted by valgrind's
callgrind: unlike wall time, that figure does not depend on what else the machine is running.

The package is byte-compiled first (python -m compileall, which writes __pycache__ even when
PYTHONDONTWRITEBYTECODE is set): an installed tool has its bytecode cached, so the figures are those
of an installed tool, not of one that recompiles its modules on every start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def precompile() -> None:
    """Byte-compile the package the runs import, as installing it would."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src" / "gexhistory")], check=True)


def child_env() -> dict[str, str]:
    """This checkout's package, the synthetic source, and the database given on the command line."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for var in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH"):
        env.pop(var, None)
    return env


def timed(args: list[str], cwd: str) -> tuple[float, dict, float]:
    """Wall seconds, the --json summary, and the child's peak RSS in MiB (from wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "gexhistory", *args], cwd=cwd, env=child_env(),
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"backfill failed ({proc.returncode}): {err.read().decode()[-2000:]}")
        out.seek(0)
        return wall, json.loads(out.read()), usage.ru_maxrss / 1024.0


def instructions(args: list[str], cwd: str) -> int:
    """Instructions one process executes, interpreter start-up included (valgrind --tool=callgrind)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind on the PATH")
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([valgrind, "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out",
                               sys.executable, "-m", "gexhistory", *args],
                              cwd=cwd, env=child_env(), capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, nargs="+", default=[365, 3650])
    ap.add_argument("--repeat", type=int, default=1, help="runs per figure; the best is printed")
    ap.add_argument("--instructions", action="store_true",
                    help="also count the instructions of one no-op rerun under valgrind (slow: ~30 s)")
    ns = ap.parse_args()
    precompile()
    print(f"bytecode: {REPO / 'src' / 'gexhistory'} precompiled (python -m compileall), as installed")
    print(f"{'days':>6} {'sessions':>8} {'snapshots':>9} {'cold s':>8} {'snap/s':>8} {'rerun s':>8} {'peak MiB':>8}"
          + (f" {'rerun Ginstr':>12}" if ns.instructions else ""))
    for days in ns.days:
        colds, reruns, rss, counted = [], [], [], None
        for _ in range(max(1, ns.repeat)):
            with tempfile.TemporaryDirectory() as tmp:
                args = ["backfill", "--days", str(days), "--source", "synthetic", "--json", "--db", "bench.db"]
                cold, summary, peak = timed(args, tmp)
                rerun, again, _ = timed(args, tmp)
                if ns.instructions and counted is None:
                    counted = instructions(args, tmp)
                snaps = summary["totals"]["gex_history"]["inserted"]
                assert again["totals"]["gex_history"]["inserted"] == 0
                sessions = summary["symbols"][0]["sessions_written"]
                colds.append(cold)
                reruns.append(rerun)
                rss.append(peak)
        cold, rerun = min(colds), min(reruns)
        print(f"{days:>6} {sessions:>8} {snaps:>9} {cold:>8.2f} {snaps / cold:>8.0f} {rerun:>8.2f} {max(rss):>8.0f}"
              + (f" {counted / 1e9:>12.3f}" if counted is not None else ""))


if __name__ == "__main__":
    main()
