"""Time of the backfill's signal step (regime_signals rows) over a synthetic SPY window.

    python benchmarks/signals.py [--days 3650] [--batch 250] [--repeat 5]

Builds the inputs once with the backfill's own machinery (compute_sessions, whose signal calls are
recorded instead of run), then times the step alone: `rows_for` one session at a time (the path of
every release so far; this script runs unchanged on older checkouts) and, where it exists,
`rows_for_many` over batches of --batch sessions, as compute_sessions batches them. Prints the best
of --repeat (wall and CPU seconds) and whether both paths give the same rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import time

import numpy as np

from gexhistory.pipeline.compute import compute_sessions
from gexhistory.pipeline.signals import SignalContext
from gexhistory.calendar import sessions_between
from gexhistory.engine.chain_model import ModelParams
from gexhistory.engine.exposure import Conventions
from gexhistory.engine.signals import SCALE_WINDOW
from gexhistory.sources.synthetic import SyntheticMarket


def recorded_calls(days: int, seed: int = 42) -> tuple[SignalContext, list[tuple]]:
    """The SignalContext and the arguments of every rows_for call of a synthetic SPY backfill."""
    calls: list[tuple] = []
    real = SignalContext.rows_for

    def record(self, *args):
        calls.append((self, args))
        return []

    SignalContext.rows_for = record
    try:
        end = dt.date(2025, 12, 31)
        todo = sessions_between(end - dt.timedelta(days=days), end)
        for _ in compute_sessions(SyntheticMarket(seed), "SPY", todo, Conventions(), ModelParams()):
            pass
    finally:
        SignalContext.rows_for = real
    return calls[0][0], [args for _, args in calls]


def per_session(ctx: SignalContext, calls: list[tuple]) -> list[list[dict]]:
    return [ctx.rows_for(*args) for args in calls]


def close_gex_series(calls: list[tuple]) -> tuple[np.ndarray, list[int]]:
    """The close net GEX of every session in date order (the first session's priors, then each
    session's close) and each session's position in it; checked against the recorded priors."""
    series = list(calls[0][3]) + [a[1][-1].net_gex for a in calls]
    positions = [len(calls[0][3]) + j for j in range(len(calls))]
    for p, a in zip(positions, calls):
        assert list(a[3]) == series[max(0, p - SCALE_WINDOW):p], "the window's sessions are not consecutive"
    return np.array(series), positions


def batched(ctx: SignalContext, calls: list[tuple], size: int) -> list[list[dict]]:
    series, positions = close_gex_series(calls)
    out = []
    for lo in range(0, len(calls), size):
        part = calls[lo:lo + size]
        out.extend(ctx.rows_for_many(
            [a[0] for a in part], [a[1] for a in part], [a[2] for a in part], series, positions[lo:lo + size],
            [a[4] for a in part], part[0][5], part[0][6], [a[7] for a in part]))
    return out


def best(fn, repeat: int) -> tuple[float, float, object]:
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), result


def same_rows(a: list[list[dict]], b: list[list[dict]]) -> int:
    """Sessions whose rows differ in any column but created_at (NaN equals NaN)."""
    def norm(rows):
        return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "created_at"}
                for r in rows]
    return sum(norm(x) != norm(y) for x, y in zip(a, b)) + abs(len(a) - len(b))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=3650)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=5)
    ns = ap.parse_args()
    t0 = time.perf_counter()
    ctx, calls = recorded_calls(ns.days)
    contracts = sum(len(a[2]) for a in calls)
    print(f"{len(calls)} sessions, {contracts} contracts; inputs built in {time.perf_counter() - t0:.1f} s")
    wall, cpu, one = best(lambda: per_session(ctx, calls), max(1, ns.repeat // 2))
    print(f"rows_for, one session per call:       {wall:7.3f} s wall {cpu:7.3f} s cpu  "
          f"({sum(map(len, one))} rows)")
    if hasattr(ctx, "rows_for_many"):
        wall, cpu, many = best(lambda: batched(ctx, calls, ns.batch), ns.repeat)
        print(f"rows_for_many, {ns.batch} sessions per call: {wall:7.3f} s wall {cpu:7.3f} s cpu  "
              f"({sum(map(len, many))} rows, sessions differing from rows_for: {same_rows(one, many)})")


if __name__ == "__main__":
    main()
