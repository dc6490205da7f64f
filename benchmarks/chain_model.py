"""Time the modelled option chains of a 10-year synthetic SPY backfill (engine/chain_model.py).

    python benchmarks/chain_model.py [--days 3650] [--repeat 3] [--against 427332c]

The price path and the sessions are those `compute.compute_sessions` uses for a `--days N` run
ending on END: bars from warmup_start(first context session), one chain per session from the first
context session to END. Prints, best of --repeat: seconds to build every chain with
ChainModel.chains_for (one call) and with chain_for (one call per session, as a caller stepping
session by session would), model construction included, in wall and CPU seconds, chains per second
and total contracts. --against REV also times that git
revision's chain_model.py (chain_for per session, the only API it may have) and checks the chains
agree: same contracts, open interest equal to the contract, IV to 1e-12 relative.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from gexhistory.calendar import sessions_before, sessions_between  # noqa: E402
from gexhistory.engine import chain_model  # noqa: E402
from gexhistory.engine.signals import SCALE_WINDOW  # noqa: E402
from gexhistory.engine.summary import CORR_WINDOW  # noqa: E402
from gexhistory.sources.synthetic import SyntheticMarket  # noqa: E402

END = dt.date(2025, 12, 31)


def spy_path(days: int):
    """Bars and chain indices of a `--days` synthetic SPY run ending on END (seed 42)."""
    todo = sessions_between(END - dt.timedelta(days=days), END)
    context = sessions_before(todo[0].date, max(CORR_WINDOW + 1, SCALE_WINDOW))
    first = context[0].date if context else todo[0].date
    bars = SyntheticMarket(42).daily_bars("SPY", chain_model.warmup_start(first), END)
    return bars, [i for i, d in enumerate(bars.dates) if d >= first]


def best_of(repeat: int, build) -> tuple[float, float, list]:
    """Best wall and best CPU seconds of `repeat` builds (on a shared machine the least disturbed)."""
    wall, cpu, chains = float("inf"), float("inf"), []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        chains = build()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu, chains


def load_revision(rev: str):
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:src/gexhistory/engine/chain_model.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"chain_model_{rev}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"chain_model_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def report(label: str, wall: float, cpu: float, chains: list) -> None:
    contracts = sum(len(c) for c in chains)
    print(f"{label:<34} {wall:7.3f} s wall {cpu:7.3f} s cpu {len(chains) / wall:8.0f} chains/s "
          f"{contracts:>10,d} contracts")


def compare(new: list, old: list) -> None:
    worst_iv, oi_diff, size_diff = 0.0, 0, 0
    for a, b in zip(new, old):
        if len(a) != len(b):
            size_diff += 1
            continue
        order = np.lexsort((~b.is_call, b.strike, b.expiry_close))  # the old chains listed calls first
        for f in ("expiry", "expiry_close", "strike", "is_call"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f)[order], err_msg=f)
        oi_diff += int((a.open_interest != b.open_interest[order]).sum())
        worst_iv = max(worst_iv, float(np.max(np.abs(a.iv / b.iv[order] - 1), initial=0.0)))
    print(f"agreement: {size_diff} chains of another size, {oi_diff} contracts with another OI, "
          f"IV within {worst_iv:.1e} relative")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=3650)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--against", help="git revision whose chain_model.py is timed too (chain_for per session)")
    ns = ap.parse_args()
    bars, idx = spy_path(ns.days)
    print(f"SPY synthetic, {ns.days} days to {END}: {len(bars.dates)} sessions of bars, {len(idx)} chains")

    def model(module=chain_model):
        if not hasattr(module, "sessions_span"):  # a revision whose model read the calendar itself
            return module.ChainModel("SPY", bars.dates, bars.close, bars.volume)
        sessions = sessions_between(*module.sessions_span(bars.dates))
        return module.ChainModel("SPY", bars.dates, bars.close, bars.volume, sessions=sessions)

    if hasattr(chain_model.ChainModel, "chains_for"):
        report("chains_for (one call)", *best_of(ns.repeat, lambda: model().chains_for(idx)))
    wall, cpu, chains = best_of(ns.repeat, lambda: [m.chain_for(i) for m in [model()] for i in idx])
    report("chain_for (one call per session)", wall, cpu, chains)
    if ns.against:
        old = load_revision(ns.against)
        wall, cpu, old_chains = best_of(ns.repeat, lambda: [m.chain_for(i) for m in [model(old)] for i in idx])
        report(f"{ns.against}: chain_for per session", wall, cpu, old_chains)
        compare(chains, old_chains)


if __name__ == "__main__":
    main()
