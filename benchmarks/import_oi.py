"""`gexhistory import-oi` speed and memory on SPX-sized answers from a local server.

    python benchmarks/import_oi.py [--sessions 21] [--contracts 30000] [--hold N]

A server on 127.0.0.1 answers `/options/v1/open-interest` in the shape Massive documents (records with
`date`, `ticker` as an OCC symbol, `root`, `contract_type`, `expiration_date`, `strike_price`,
`open_interest`, 50,000 a page), for roots SPX and SPXW, about `--contracts` contracts a session
between them (SPXW: every session's expiry for six weeks, Fridays for a year; SPX: the monthlies), and
`/v2/aggs` daily bars of I:SPX. The command runs once, as a user would, into a fresh SQLite database
(interpreter start-up included): wall seconds, seconds per session and peak resident memory (of the
child process alone). With --hold the chains wait on disk past that many contracts
(GEXHISTORY_IMPORT_HOLD_CONTRACTS). The network is loopback: against Massive, the requests (two per
session, at your plan's rate) dominate. Not a timed test: figures on a shared machine move by tens of
percent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parent.parent
LAST = dt.date(2025, 6, 30)


def _expiries(day: dt.date) -> dict[str, list[dt.date]]:
    from gexhistory.calendar import sessions_between

    ahead = [s.date for s in sessions_between(day, day + dt.timedelta(days=370))]
    weekly = [d for d in ahead if d <= day + dt.timedelta(days=42) or d.weekday() == 4]
    monthly = [d for d in ahead if d.weekday() == 4 and 15 <= d.day <= 21]
    return {"SPXW": weekly, "SPX": monthly}


def _records(day: dt.date, contracts: int) -> dict[str, list[dict]]:
    out = {}
    plan = _expiries(day)
    n_exp = sum(len(v) for v in plan.values())
    per = max(2, contracts // (2 * n_exp))
    for root, expiries in plan.items():
        recs = []
        for e in expiries:
            for k in range(per):
                strike = 4000 + 10 * k
                for r in "CP":
                    recs.append({"date": day.isoformat(), "underlying_ticker": "SPX", "root": root,
                                 "ticker": f"O:{root}{e:%y%m%d}{r}{strike * 1000:08d}",
                                 "contract_type": "call" if r == "C" else "put", "expiration_date": e.isoformat(),
                                 "strike_price": strike, "open_interest": 100 + (k * 37 + e.day * 11) % 5000})
        out[root] = recs
    return out


class _Handler(BaseHTTPRequestHandler):
    contracts = 30000
    closes: dict[str, float] = {}

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.startswith("/v2/aggs/"):
            a, b = url.path.split("/")[-2:]
            from gexhistory.calendar import ET

            res = [{"t": int(dt.datetime.fromisoformat(d).replace(tzinfo=ET).timestamp() * 1000), "o": c, "h": c,
                    "l": c, "c": c, "v": 0} for d, c in sorted(self.closes.items()) if a <= d <= b]
            body = {"status": "OK", "results": res}
        else:
            recs = _records(dt.date.fromisoformat(q["date"]), self.contracts)[q["root"]]
            start = int(q.get("cursor", 0))
            page = recs[start:start + 50_000]
            body = {"status": "OK", "request_id": "b", "results": page}
            if start + 50_000 < len(recs):
                body["next_url"] = f"https://api.massive.com{url.path}?cursor={start + 50_000}&root={q['root']}&date={q['date']}"
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=21)
    ap.add_argument("--contracts", type=int, default=30000)
    ap.add_argument("--hold", type=int, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from gexhistory.calendar import sessions_before, sessions_between

    sessions = sessions_before(LAST + dt.timedelta(days=1), args.sessions)
    first = sessions_before(sessions[0].date, 30)[0].date
    _Handler.contracts = args.contracts
    _Handler.closes = {s.date.isoformat(): 6000.0 + 40 * ((i * 7) % 5)
                       for i, s in enumerate(sessions_between(first, LAST))}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    per_session = sum(len(v) for v in _records(sessions[-1].date, args.contracts).values())
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, POLYGON_API_KEY="bench", MASSIVE_BASE_URL=f"http://127.0.0.1:{server.server_port}",
                   MASSIVE_RATE_PER_MIN="1000000", PYTHONPATH=str(REPO / "src"))
        if args.hold is not None:
            env["GEXHISTORY_IMPORT_HOLD_CONTRACTS"] = str(args.hold)
        cmd = [sys.executable, "-m", "gexhistory", "import-oi", "--symbol", "SPX", "--start",
               sessions[0].date.isoformat(), "--end", LAST.isoformat(), "--db", str(Path(tmp) / "b.db"), "--json"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    server.shutdown()
    if out.returncode:
        sys.exit(out.stderr)
    res = json.loads(out.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"import-oi SPX, {len(res['sessions'])} sessions, ~{per_session:,} records a session (SPX + SPXW), "
          f"{res['files'][0]['contracts']:,} contracts stored: {wall:.2f} s wall, {wall / len(res['sessions']):.3f} s "
          f"a session, peak {peak:,.0f} MiB" + (f" (hold {args.hold:,})" if args.hold is not None else ""))


if __name__ == "__main__":
    main()
