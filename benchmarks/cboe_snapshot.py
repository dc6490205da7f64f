"""One keyless Cboe snapshot of an SPX-sized chain, step by step, on SQLite.

    python benchmarks/cboe_snapshot.py [--contracts 30000] [--zero-iv 0.05] [--repeat 3]

Cboe's `_SPX.json` lists about 30,000 contracts (SPX and SPXW roots, ~13 MB). A payload of that
size in the published shape is generated (strikes every 5 points around 6,000, expiries over a year,
`--zero-iv` of the contracts with IV 0 and a bid/ask, so derived from the mid) and served from
127.0.0.1 by a plain http.server; then, best of --repeat, the steps of `snapshot --source cboe`:

- fetch + parse: the HTTP GET, json, and the contract arrays (sources/cboe_delayed.py);
- chain: IVs derived, roots merged (pipeline/cboe_snapshot.build_chain);
- engine: net GEX, flip, walls (compute_gex_one);
- store: the chain and the two snapshot rows in one transaction (SQLite, a fresh file each time);
- whole process: `python -m gexhistory snapshot --source cboe --symbols SPX` start to end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

SPOT = 6010.25
STAMP = "2025-06-10 11:07:42"


def payload(n: int, zero_iv: float) -> dict:
    rng = np.random.default_rng(7)
    days = np.busday_offset("2025-06-10", np.arange(0, 260, 2), roll="forward")  # an expiry every 2 sessions
    strikes = np.arange(4000, 8000, 5)
    options = []
    per_expiry = max(2, n // days.size // 2)
    for i, d in enumerate(days):
        root = "SPX" if i % 10 == 0 else "SPXW"
        ks = strikes[(strikes.size - per_expiry) // 2:][:per_expiry]
        ymd = str(d)[2:].replace("-", "")
        for k in ks:
            for right in "CP":
                iv = 0.0 if rng.random() < zero_iv else round(0.12 + 0.4 * abs(k - SPOT) / SPOT, 4)
                price = max(0.05, (SPOT - k if right == "C" else k - SPOT)) + 5.0
                options.append({"option": f"{root}{ymd}{right}{int(k) * 1000:08d}", "bid": round(price * 0.99, 2),
                                "bid_size": 10, "ask": round(price * 1.01, 2), "ask_size": 10, "iv": iv,
                                "open_interest": int(rng.integers(0, 5000)), "volume": 10, "delta": 0.5,
                                "gamma": 0.001, "vega": 1.0, "theta": -1.0, "rho": 0.1, "theo": price,
                                "last_trade_price": price, "last_trade_time": "2025-06-10T11:00:00",
                                "prev_day_close": price, "change": 0.0, "percent_change": 0.0, "tick": "up"})
    return {"timestamp": STAMP, "data": {"symbol": "_SPX", "current_price": SPOT, "close": SPOT,
                                         "prev_day_close": SPOT - 10, "options": options}}


def best(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contracts", type=int, default=30000)
    ap.add_argument("--zero-iv", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from gexhistory.engine.exposure import Conventions, compute_gex_one
    from gexhistory.pipeline.cboe_snapshot import build_chain, snapshot_time, take_cboe_snapshot
    from gexhistory.sources.cboe_delayed import CboeClient
    from gexhistory.store.db import init_schema, open_engine

    with tempfile.TemporaryDirectory() as tmp:
        www = Path(tmp, "www/api/global/delayed_quotes/options")
        www.mkdir(parents=True)
        body = json.dumps(payload(args.contracts, args.zero_iv))
        (www / "_SPX.json").write_text(body)
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # the figures are the output
                pass

        handler = functools.partial(Quiet, directory=str(Path(tmp, "www")))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        os.environ["CBOE_BASE_URL"] = f"http://127.0.0.1:{server.server_address[1]}"
        client = CboeClient()
        t_fetch, q = best(lambda: client.fetch("SPX"), args.repeat)
        conv = Conventions()
        session, at = snapshot_time(q.timestamp)
        t_chain, (chain, *_rest) = best(lambda: build_chain(q, session, at, conv), args.repeat)
        t_engine, _ = best(lambda: compute_gex_one(chain, q.spot, at, conv), args.repeat)

        def store():
            db = Path(tmp, f"s{time.perf_counter_ns()}.db")
            engine = open_engine(str(db))
            init_schema(engine)
            t0 = time.perf_counter()
            take_cboe_snapshot(engine, q, conv)
            engine.dispose()
            return time.perf_counter() - t0

        whole_snapshot = min(store() for _ in range(args.repeat))

        def process():
            env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
            r = subprocess.run([sys.executable, "-m", "gexhistory", "snapshot", "--source", "cboe", "--symbols", "SPX",
                                "--quiet", "--db", str(Path(tmp, f"p{time.perf_counter_ns()}.db"))], env=env,
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr

        t_process, _ = best(process, args.repeat)
        client.close()
        server.shutdown()
    print(f"Cboe snapshot of {q.listed:,} contracts ({len(body) / 1e6:.1f} MB JSON; {len(chain):,} in the chain), "
          f"best of {args.repeat}, {dt.date.today()}:")
    for label, secs in (("fetch + parse", t_fetch), ("chain (IVs, roots)", t_chain), ("engine", t_engine),
                        ("chain+engine+store (SQLite)", whole_snapshot), ("whole process", t_process)):
        print(f"  {label:<28} {secs:8.3f} s")


if __name__ == "__main__":
    main()
