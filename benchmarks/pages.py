"""Response times of the pages and API on a 10-year SQLite database (the pages must stay fast on 10 years).

    python benchmarks/pages.py [--days 3650] [--db PATH] [--repeat 5]

Builds the database with the synthetic backfill unless --db names an existing one, starts
`gexhistory serve` on a free 127.0.0.1 port, and prints per URL the median and worst wall time of
--repeat HTTP GETs (after one warm-up), the response size, and how many points its chart carries.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
URLS = ["/gex/history?days=all", "/gex/history?days=365", "/gex/history", "/gamma?days=all", "/gamma",
        "/psychology/performance", "/probability", "/api/gex/history?days=all",
        "/api/gex/regime-changes?days=all", "/api/gamma/SPY/history?days=all",
        "/api/psychology/performance/by-pattern", "/api/probability/regimes", "/gex/profile",
        "/api/gex/profile", "/api/gex/profile/sessions"]
# Profiles of modelled snapshots across the history (the chain is rebuilt per request): issue 17 asks
# under 100 ms of server time on ten years.
PROFILE_SAMPLES = 5


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for var in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH"):
        env.pop(var, None)
    return env


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the server process: its own cost, whatever else loads the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _points(body: bytes) -> int | None:
    if body[:1] == b"{":
        data = json.loads(body).get("data")
        return len(data) if isinstance(data, list) else None
    figs = re.findall(rb'data-chart-for="[^"]+">(.*?)</script>', body, re.S)
    if not figs:
        return None
    return max(len(json.loads(f)["data"][0]["x"]) for f in figs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=3650)
    ap.add_argument("--db", default=None, help="existing database to serve (default: build one)")
    ap.add_argument("--repeat", type=int, default=5)
    ns = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = ns.db or str(Path(tmp.name) / "bench.db")
    if not Path(db).exists():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gexhistory", "backfill", "--days", str(ns.days), "--source",
                        "synthetic", "--quiet", "--db", db], env=_env(), check=True)
        print(f"built {db}: --days {ns.days} in {time.perf_counter() - t0:.1f} s")
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "gexhistory", "serve", "--db", db, "--port", str(port)],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                _get(base + "/api/symbols")
                break
            except OSError:
                time.sleep(0.1)
        counts = json.loads(_get(base + "/api/gex/history?days=all&max_points=10")[1])
        steps = json.loads(_get(base + "/api/gex/profile/sessions")[1])["data"]
        picks = [steps[int(i * (len(steps) - 1) / (PROFILE_SAMPLES - 1))]["timestamp"] for i in range(PROFILE_SAMPLES)]
        urls = URLS + ["/api/gex/profile?at=" + t[:16].replace(" ", "T") for t in picks]
        print(f"serving {counts['start']} .. {counts['end']} ({counts['summary']['snapshots']} gex snapshots)")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; 'server cpu' is the server's own CPU time")
        print(f"{'url':<42} {'median ms':>9} {'max ms':>8} {'cpu ms':>7} {'KiB':>6} {'points':>7}")
        for url in urls:
            _get(base + url)
            times, body = [], b""
            cpu0 = _cpu_seconds(proc.pid)
            for _ in range(ns.repeat):
                t, body = _get(base + url)
                times.append(t * 1000)
            cpu = (_cpu_seconds(proc.pid) - cpu0) / ns.repeat * 1000
            pts = _points(body)
            print(f"{url:<42} {statistics.median(times):>9.1f} {max(times):>8.1f} {cpu:>7.0f} {len(body) / 1024:>6.0f} "
                  f"{'' if pts is None else pts:>7}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        tmp.cleanup()


if __name__ == "__main__":
    main()
