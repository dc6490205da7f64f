"""The web server as a user starts it (SPEC §8): bound to 127.0.0.1 unless told otherwise, and
read-only: every route answers 405 to POST, PUT, PATCH and DELETE over real HTTP, and serving leaves
the database file byte-for-byte unchanged. Every response, errors and static files included, carries
the security headers and no server banner.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import shutil
import sqlite3
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

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
                   | {"/static/plotly.min.js", "/api/openapi.json"})
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


EXPECTED = {
    "content-security-policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}

# (method, path, extra request headers, status): pages, API, static files (plain and gzipped), the
# schema, redirects and every error the app answers with.
RESPONSES = [
    ("GET", "/", {}, 307),
    ("GET", "/gex/history", {}, 200),
    ("GET", "/gex/profile", {}, 200),
    ("GET", "/gamma?days=all", {}, 200),
    ("GET", "/psychology/performance", {}, 200),
    ("GET", "/probability", {}, 200),
    ("GET", "/api/symbols", {}, 200),
    ("GET", "/api/gex/history?days=all", {"Accept-Encoding": "gzip"}, 200),
    ("GET", "/api/gamma/SPY/history", {}, 200),
    ("GET", "/api/openapi.json", {}, 200),
    ("GET", "/static/style.css", {}, 200),
    ("GET", "/static/app.js", {}, 200),
    ("GET", "/static/plotly.min.js", {}, 200),
    ("GET", "/static/plotly.min.js", {"Accept-Encoding": "gzip"}, 200),
    ("HEAD", "/gex/history", {}, 405),
    ("GET", "/static/nothere.js", {}, 404),
    ("GET", "/no/such/page", {}, 404),
    ("GET", "/gamma?symbol=QQQQ", {}, 404),
    ("GET", "/api/gex/history?symbol=QQQQ", {}, 404),
    ("GET", "/api/docs", {}, 404),
    ("GET", "/gex/history?days=-3", {}, 400),
    ("GET", "/api/gex/history?start=2024-13-01", {}, 400),
    ("POST", "/gex/history", {}, 405),
    ("DELETE", "/api/symbols", {}, 405),
    ("GET", "/api/gex/history?max_points=many", {}, 422),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill

    folder = tmp_path_factory.mktemp("served")
    db = folder / "gex_copilot.db"
    run_backfill(BackfillOptions(["SPY"], dt.date(2024, 11, 1), dt.date(2024, 12, 31), source="synthetic", db=str(db)))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_PATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    proc = subprocess.Popen([sys.executable, "-m", "gexhistory", "serve", "--db", str(db), "--port", str(port),
                             "--workers", "1"], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 60
    while not _listening_addresses(port):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "server did not start listening"
        time.sleep(0.2)
    yield db, port
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.parametrize("method,path,headers,status", RESPONSES, ids=[f"{m} {p} {h}" for m, p, h, _ in RESPONSES])
def test_every_response_carries_the_security_headers(served, method, path, headers, status):
    _, port = served
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()
    assert resp.status == status
    got = {k.lower(): v for k, v in resp.getheaders()}
    assert {k: got.get(k) for k in EXPECTED} == EXPECTED
    assert "server" not in got  # no `server: uvicorn` banner
    assert len(resp.msg.get_all("content-security-policy")) == 1


def test_an_internal_error_carries_them_too(served, tmp_path):
    """A 500 comes from the outermost error layer, outside the app's own handlers: the headers wrap it."""
    from fastapi.testclient import TestClient

    from gexhistory.web.app import create_app

    broken = tmp_path / "broken.db"
    shutil.copy(served[0], broken)
    with sqlite3.connect(broken) as conn:
        conn.execute("DROP TABLE gex_history")  # the symbol list still reads; the history query fails
    app = create_app(str(broken))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/api/gex/history")
    app.state.db.dispose()
    assert r.status_code == 500
    assert {k: r.headers.get(k) for k in EXPECTED} == EXPECTED
