"""Slow clients cannot hold the real `gexhistory serve`: with 200 idle connections and a table of clients
that trickle their request, stall their body or stop reading, an ordinary request still answers at
once, and each slow connection is dropped by its deadline (request whole within GEXHISTORY_REQUEST_TIMEOUT,
a stalled response write after GEXHISTORY_WRITE_TIMEOUT, an idle keep-alive after 5 s). The deadlines
are shortened here so the test waits seconds, not minutes.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

import pytest

from helpers import run_cli
from test_pages_browser import _start, _stop

REQUEST_TIMEOUT = 2.0
WRITE_TIMEOUT = 2.0


def _connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    return s


def _closed_by_server(s: socket.socket, within: float) -> bool:
    """True when the server ends the connection (EOF or reset) within `within` seconds; reads and
    discards whatever it sends meanwhile."""
    s.settimeout(0.2)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if s.recv(1 << 16) == b"":
                return True
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True
    return False


def _trickle(s: socket.socket, data: bytes, stop: threading.Event) -> None:
    """Send `data` a byte every 0.3 s: always active, never done."""
    for b in data:
        if stop.is_set():
            return
        try:
            s.send(bytes([b]))
        except OSError:
            return
        time.sleep(0.3)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slow")
    db = str(folder / "gex_copilot.db")
    assert run_cli(["backfill", "--symbols", "SPY", "--days", "30", "--quiet", "--db", db], folder).returncode == 0
    proc, base = _start(db, extra_env={"GEXHISTORY_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
                                       "GEXHISTORY_WRITE_TIMEOUT": str(WRITE_TIMEOUT)})
    yield int(base.rsplit(":", 1)[1]), base
    _stop(proc)


def _timed_get(url: str) -> float:
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        r.read()
    return time.monotonic() - t0


def test_idle_connections_do_not_stop_others_and_are_closed(server):
    port, base = server
    idle = [_connect(port) for _ in range(200)]
    try:
        took = [_timed_get(base + path) for path in ("/api/symbols", "/gex/history", "/api/gex/history")]
        assert max(took) < 3, took
        # Said nothing: dropped at the request deadline (not left open for good).
        time.sleep(REQUEST_TIMEOUT + 1)
        still_open = [s for s in idle if not _closed_by_server(s, 0.05)]
        assert still_open == []
    finally:
        for s in idle:
            s.close()


# (name, bytes sent slowly): a request line and headers that never end, a body that never completes.
TRICKLES = [
    ("header trickle", b"GET /gex/history HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200),
    ("request line trickle", b"GET /" + b"x" * 200),
    ("stalled body", b"POST /api/symbols HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"{" * 200),
]


@pytest.mark.parametrize("name,data", TRICKLES, ids=[t[0] for t in TRICKLES])
def test_trickling_clients_are_dropped_at_the_request_deadline(server, name, data):
    port, base = server
    stop = threading.Event()
    socks = [_connect(port) for _ in range(20)]
    threads = [threading.Thread(target=_trickle, args=(s, data, stop), daemon=True) for s in socks]
    for t in threads:
        t.start()
    try:
        assert _timed_get(base + "/gex/history") < 3
        t0 = time.monotonic()
        closed = [_closed_by_server(s, REQUEST_TIMEOUT + 3) for s in socks]
        assert all(closed), name
        assert time.monotonic() - t0 < REQUEST_TIMEOUT + 3
    finally:
        stop.set()
        for s in socks:
            s.close()


def test_a_client_that_stops_reading_is_dropped(server):
    """4.8 MB of plotly.min.js asked for and never read: the write stalls and the server gives up."""
    port, base = server
    s = _connect(port, rcvbuf=4096)
    try:
        s.sendall(b"GET /static/plotly.min.js HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(WRITE_TIMEOUT + 2)  # read nothing while the server's send buffer fills and stalls
        assert _timed_get(base + "/api/symbols") < 3
        received = 0
        s.settimeout(2)
        try:
            while chunk := s.recv(1 << 20):
                received += len(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
        assert received < 4_000_000  # cut off, not delivered whole once the client woke up
    finally:
        s.close()


def test_an_idle_keep_alive_connection_is_closed(server):
    port, _ = server
    s = _connect(port)
    try:
        s.sendall(b"GET /api/symbols HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        assert s.recv(1 << 16).startswith(b"HTTP/1.1 200")
        assert _closed_by_server(s, 5 + 2)
    finally:
        s.close()
