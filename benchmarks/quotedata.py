"""Reading Cboe delayed-quotes downloads at full size: one SPX chain split into pieces, as Cboe does.

    python benchmarks/quotedata.py [--rows 12000] [--pieces 3] [--repeat 3]

Writes an SPX-shaped quotedata chain of --rows rows (two contracts each: SPX and SPXW roots, daily
expirations, strikes every 5 points, a share of IV-0 rows with quotes) split into --pieces files by
expiration range, then times `parse_files` on the pieces (parse, derive IVs at the parity forwards,
build and union the chain) and the bare pandas read of the same files beside it, best of --repeat.
Printed: rows, contracts kept, seconds, rows per second. Nothing is written to a database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gexhistory.calendar import sessions_between  # noqa: E402
from gexhistory.pipeline.import_chains import parse_files  # noqa: E402
from gexhistory.sources.chains.quotedata import HEADER  # noqa: E402

SPOT, SESSION = 5000.0, dt.date(2024, 6, 7)


def _rows(n: int) -> list[tuple[dt.date, list[str]]]:
    days = [s.date for s in sessions_between(SESSION, SESSION + dt.timedelta(days=55))][:40]
    per_day = max(1, n // len(days))
    strikes = SPOT + 5.0 * (np.arange(per_day) - per_day // 2)
    rng = np.random.default_rng(7)
    out = []
    for j, e in enumerate(days):
        root = "SPX" if e.weekday() == 4 and 15 <= e.day <= 21 else "SPXW"
        t = max((e - SESSION).days, 0.3) / 365
        for k in strikes:
            if k <= 0:
                continue
            iv = max(0.06, 0.14 + 0.4 * (SPOT - k) / SPOT)
            m = max(0.05, math.exp(-(((k - SPOT) / (SPOT * 0.05 * math.sqrt(t) + 1)) ** 2)) * 40 * math.sqrt(t))
            sides = []
            for cp in "CP":
                sym = f"{root}{e:%y%m%d}{cp}{int(k * 1000):08d}"
                shown = "0.0" if rng.random() < 0.05 else f"{iv:.4f}"
                sides.append([sym, f"{m:.2f}", "0.0", f"{m * 0.98:.2f}", f"{m * 1.02:.2f}", "10", shown, "0.5",
                              "0.001", str(int(rng.integers(0, 5000)))])
            out.append((e, [f"{e:%a %b %d %Y}", *sides[0], f"{k:.1f}", *sides[1]]))
        if len(out) >= n:
            break
    return out[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=12000)
    ap.add_argument("--pieces", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    body = _rows(a.rows)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        cut = np.array_split(np.arange(len(body)), a.pieces)
        for i, idx in enumerate(cut):
            p = Path(tmp) / f"spx_quotedata_{i}.csv"
            lines = ["", "SPX (S&P 500 INDEX),Last: 5000.00,Change: 1.0",
                     '"Date: June 8, 2024, 10:00 AM EDT",Bid: N/A,Ask: N/A', ",".join(HEADER)]
            p.write_text("\n".join(lines + [",".join(body[j][1]) for j in idx]) + "\n")
            paths.append(str(p))
        best, bare, kept = math.inf, math.inf, 0
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            items = parse_files(paths)
            best = min(best, time.perf_counter() - t0)
            kept = sum(len(i.chain) for i in items)
            t0 = time.perf_counter()
            for p in paths:
                pd.read_csv(p, skiprows=4, header=None, dtype=str, keep_default_na=False)
            bare = min(bare, time.perf_counter() - t0)
    print(f"quotedata: {len(body):,} rows in {a.pieces} pieces -> one chain of {kept:,} contracts")
    print(f"  parse_files: {best:.3f} s ({len(body) / best:,.0f} rows/s); bare pandas read: {bare:.3f} s "
          f"({len(body) / bare:,.0f} rows/s)")


if __name__ == "__main__":
    main()
