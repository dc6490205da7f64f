"""The web server as a user starts it (SPEC §8): bound to 127.0.0.1 unless told otherwise, and
read-only: every route answers 405 to POST, PUT, PATCH and DELETE over real HTTP, and serving leaves
the database file byte-for-byte unchanged.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from dbcheck import file_sha256
from helpers import REPO

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses in LISTEN state on `port`, from /proc/net/tcp{,6} (Linux)."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as fh:
                next(fh)
                for line in fh:
                    local, state = line.split()[1], line.split()[3]
                    addr, hexport = local.split(":")
                    if state == "0A" and int(hexport, 16) == port:
                        if len(addr) == 8:
                            found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                        else:
                            found.add(addr)
        except FileNotFoundError:
            continue
    return found


def _request(method: str, url: str) -> int:
    req = urllib.request.Request(url, method=method, data=b"{}" if method != "DELETE" else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_defaults_to_loopback_and_refuses_writes(tmp_path):
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
    from gexhistory.web import api, pages

    db = tmp_path / "gex_copilot.db"
    run_backfill(BackfillOptions(["SPY"], dt.date(2024, 11, 1), dt.date(2024, 12, 31), source="synthetic", db=str(db)))
    before = file_sha256(db)
    paths = sorted({r.path.replace("{symbol}", "SPY") for router in (api.router, pages.router) for r in router.routes}
                   | {"/static/plotly.min.js", "/api/docs"})
    assert "/gex/history" in paths and "/api/gex/history" in paths

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_PATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    proc = subprocess.Popen([sys.executable, "-m", "gexhistory", "serve", "--db", str(db), "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _listening_addresses(port):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "server did not start listening"
            time.sleep(0.2)
        assert _listening_addresses(port) == {"127.0.0.1"}  # not 0.0.0.0, not ::

        base = f"http://127.0.0.1:{port}"
        assert _request("GET", base + "/gex/history") == 200
        refused = {(m, p): _request(m, base + p) for p in paths for m in WRITE_METHODS}
        assert set(refused.values()) == {405}, {k: v for k, v in refused.items() if v != 405}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert file_sha256(db) == before
    print(f"\n{len(refused)} write requests refused with 405 on {len(paths)} routes")
