"""Cold cost of the synthetic market's price side, as a --days N backfill asks for it.

    python benchmarks/synthetic.py [--days 3650] [--repeat 5] [--symbol SPY]

Each repeat is a fresh Python process (nothing cached in memory; the calendar table comes from its
file cache, as in a real run). It times the requests compute_sessions makes: daily bars from the
chain model's warm-up start through the window's end, minute bars for the window plus the RSI warm-up
sessions, the snapshot times of the window, and spots_at. Prints the best of the repeats per step, wall
and CPU time of the process (on a shared machine CPU time is the steadier figure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from gexhistory.calendar import sessions_before, sessions_between, window_for_days
from gexhistory.engine.chain_model import warmup_start
from gexhistory.engine.rsi import WARMUP_SESSIONS
from gexhistory.engine.signals import SCALE_WINDOW
from gexhistory.engine.summary import CORR_WINDOW
from gexhistory.sources.synthetic import SyntheticMarket
days, symbol = int(sys.argv[1]), sys.argv[2]
out, clock = {}, [time.perf_counter(), time.process_time()]
def lap(step):
    now = [time.perf_counter(), time.process_time()]
    out[step] = [now[0] - clock[0], now[1] - clock[1]]
    clock[:] = now
start, end = window_for_days(days); todo = sessions_between(start, end); lap("calendar")
market = SyntheticMarket(42)
context = sessions_before(todo[0].date, max(CORR_WINDOW + 1, SCALE_WINDOW))
daily = market.daily_bars(symbol, warmup_start(context[0].date), todo[-1].date); lap("daily_bars")
minutes = market.minute_bars(symbol, sessions_before(todo[0].date, WARMUP_SESSIONS) + todo); lap("minute_bars")
times = [s.snapshot_times() for s in todo]; lap("snapshot_times")
spots = minutes.spots_at(times); lap("spots_at")
out["price side"] = [sum(out[k][i] for k in ("daily_bars", "minute_bars", "snapshot_times", "spots_at"))
                     for i in (0, 1)]
out["sessions"] = [len(daily), len(minutes.sessions), len(todo)]
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=3650)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--symbol", default="SPY")
    ns = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    runs = [json.loads(subprocess.run([sys.executable, "-c", CHILD, str(ns.days), ns.symbol], env=env,
                                      check=True, capture_output=True, text=True).stdout)
            for _ in range(max(1, ns.repeat))]
    daily, minute, window = runs[0]["sessions"]
    print(f"{ns.days} days, {ns.symbol}: daily bars for {daily} sessions, minute bars for {minute}, "
          f"{window} sessions in the window; best of {len(runs)} fresh processes")
    print(f"  {'step':<15} {'wall ms':>8} {'cpu ms':>8}")
    for step in ("calendar", "daily_bars", "minute_bars", "snapshot_times", "spots_at", "price side"):
        wall, cpu = (min(r[step][i] for r in runs) * 1000 for i in (0, 1))
        print(f"  {step:<15} {wall:8.1f} {cpu:8.1f}")


if __name__ == "__main__":
    main()
