"""Do the stored GEX regimes follow the price path? (issue 4: negative after sharp sell-offs,
positive in calm rallies, not noise.)

    python benchmarks/regimes_vs_price.py [--days 3650] [--symbol SPY] [--seed 42] [--db FILE]
                                          [--reference tests/data/spx_gex_2011_2022.csv]

Runs a synthetic backfill into a fresh SQLite file (or reads --db if it already holds one), then
reads each session's close snapshot (regime, spot, net GEX) from gamma_history and prints the share
of NEGATIVE and POSITIVE regimes (NEUTRAL: |net| < 5% of gross) and of net GEX < 0:
- on the 5% worst drawdown days (close / 60-session high - 1), and in the 20 sessions after each,
- in calm rallies (60-session return > 0 and 20-session realised vol in its lowest third),
- over all sessions.
Then the same shares of net GEX < 0 on the reference file's S&P 500 closes, for the published GEX
and for the modelled chain over the same closes (pipeline/validate.py), so the synthetic figures
can be read against the real market's.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SETS = ("the 5% worst drawdown days themselves", "20 sessions after the 5% worst drawdowns",
        "calm rallies (60d ret > 0, rv20 low third)", "all sessions (after 60 warm-up)")


def price_sets(close: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, float]:
    """The four session sets of SETS (boolean masks), the 60-session drawdown, and its 5% quantile."""
    n = close.size
    high60 = np.array([close[max(0, i - 59):i + 1].max() for i in range(n)])
    dd = close / high60 - 1
    ret60 = np.r_[np.full(60, np.nan), close[60:] / close[:-60] - 1]
    r = np.diff(np.log(close), prepend=np.nan)
    rv20 = np.array([np.nanstd(r[max(1, i - 19):i + 1]) * np.sqrt(252) if i >= 20 else np.nan for i in range(n)])
    valid = np.arange(n) >= 60
    cut = float(np.quantile(dd[valid], 0.05))
    worst = valid & (dd <= cut)
    after = np.zeros(n, bool)
    for i in np.flatnonzero(worst):
        after[i:i + 21] = True
    calm = valid & (ret60 > 0) & (rv20 <= np.nanquantile(rv20[valid], 1 / 3))
    return [worst, after & valid, calm, valid], dd, cut


def synthetic(args) -> None:
    db = args.db or str(Path(tempfile.mkdtemp()) / "regimes.db")
    if not Path(db).exists():
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        for var in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH"):
            env.pop(var, None)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gexhistory", "backfill", "--source", "synthetic", "--days",
                        str(args.days), "--symbol", args.symbol, "--seed", str(args.seed), "--db", db, "--quiet"],
                       env=env, check=True)
        print(f"backfill --days {args.days} --symbol {args.symbol} --seed {args.seed}: "
              f"{time.perf_counter() - t0:.0f}s into {db}")
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT g.date, g.spot_price, g.regime, g.net_gex FROM gamma_history g "
        "JOIN (SELECT date, MAX(time_of_day) AS t FROM gamma_history WHERE symbol = ? GROUP BY date) last "
        "ON g.date = last.date AND g.time_of_day = last.t WHERE g.symbol = ? ORDER BY g.date",
        (args.symbol, args.symbol)).fetchall()
    close = np.array([r[1] for r in rows], float)
    neg = np.array([r[2] == "NEGATIVE" for r in rows])
    pos = np.array([r[2] == "POSITIVE" for r in rows])
    gex = np.array([r[3] for r in rows], float)
    masks, dd, cut = price_sets(close)
    print(f"{args.symbol}: {close.size} sessions {rows[0][0]}..{rows[-1][0]}; 5% worst 60-day drawdowns: "
          f"dd <= {cut:.1%} ({masks[0].sum()} days); median |close net GEX| ${np.median(np.abs(gex)) / 1e9:.2f}B")
    print(f"{'set':<44}{'sessions':>9}{'NEGATIVE':>10}{'POSITIVE':>10}{'net<0':>8}")
    for label, m in zip(SETS, masks):
        print(f"{label:<44}{int(m.sum()):>9}{neg[m].mean():>10.1%}{pos[m].mean():>10.1%}{(gex[m] < 0).mean():>8.1%}")
    from gexhistory.engine.validation import spearman  # lazy: src is on the path only once main() set it

    print(f"Spearman(close net GEX, 60-day drawdown) = {spearman(gex[masks[3]], dd[masks[3]]):.3f}")


def reference(path: str) -> None:
    from gexhistory.pipeline.validate import modelled_close_gex  # lazy: src is on the path only once main() set it
    from gexhistory.sources.reference import read_reference  # lazy: as above

    ref = read_reference(path)
    model = modelled_close_gex("SPX", ref.dates, ref.close)
    masks, _, cut = price_sets(ref.close)
    print(f"\nreference {path}: {len(ref.dates)} sessions {ref.dates[0]}..{ref.dates[-1]}; 5% worst 60-day "
          f"drawdowns: dd <= {cut:.1%} ({masks[0].sum()} days)")
    print(f"{'set':<44}{'sessions':>9}{'published net<0':>17}{'modelled net<0':>16}")
    for label, m in zip(SETS, masks):
        print(f"{label:<44}{int(m.sum()):>9}{(ref.gex[m] < 0).mean():>17.1%}{(model[m] < 0).mean():>16.1%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=3650)
    ap.add_argument("--symbol", default="SPY")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--db", default=None)
    ap.add_argument("--reference", default=str(REPO / "tests" / "data" / "spx_gex_2011_2022.csv"))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    synthetic(args)
    reference(args.reference)


if __name__ == "__main__":
    main()
