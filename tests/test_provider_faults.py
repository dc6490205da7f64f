"""Provider faults beyond the Massive client's own tests (SPEC §8), through the CLI as a user runs it:
connection refused, answers slower than the timeout, a server that closes mid-body, and a fault that
comes after the daily bars were fetched. Each ends in exit 1 and one line naming the cause and the
number of tries; the tries are counted at the server; no session of the window is written and the run
is recorded as failed. After every run, failing or not, the API key must appear nowhere: stdout,
stderr, any row of any table, the database file's raw bytes, or any file the run left behind.

The faulty server is a raw socket server on 127.0.0.1 in a thread, so it can misbehave at the byte
level (stall, cut a body short) in ways a well-behaved HTTP test server cannot.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from dbcheck import runs
from helpers import rows, run_cli

KEY = "pk_REL7_7f3a9c2e5b8d1046"  # must never leave the Authorization header
TRIES = 3
TIMEOUT = 0.5
WINDOW = ["--start", "2024-12-02", "--end", "2024-12-13"]
SESSION_TABLES = ("gex_history", "gamma_history", "gamma_daily_summary", "regime_signals")


def _provider_env(base_url: str) -> dict:
    return {"POLYGON_API_KEY": KEY, "MASSIVE_BASE_URL": base_url, "MASSIVE_MAX_TRIES": str(TRIES),
            "MASSIVE_BACKOFF_SECONDS": "0", "MASSIVE_TIMEOUT_SECONDS": str(TIMEOUT),
            "MASSIVE_RATE_PER_MIN": "100000"}


class FaultyServer:
    """Accepts HTTP/1.1 GETs on 127.0.0.1 and answers with `behaviour(path) -> bytes | None`
    (None: stall past the client's timeout, then hang up). Records every request path."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.paths: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        with conn:
            conn.settimeout(10)
            buf = b""
            try:
                while True:  # keep-alive: one request after another until a reply ends the connection
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    path = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
                    self.paths.append(path.split("?", 1)[0])
                    reply = self.behaviour(path.split("?", 1)[0])
                    if reply is None:
                        time.sleep(TIMEOUT * 4)
                        return
                    conn.sendall(reply)
                    if b"Connection: close" in reply:
                        return
            except OSError:
                return

    def close(self):
        self._stop.set()
        self.sock.close()


def _cut_short(_path: str) -> bytes:
    body = b'{"status":"OK","resultsCount":2,"results":[{"t":1733115600000,"o":600.1,'
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n"
            b"Connection: close\r\n\r\n" + body)


def _daily_ok(path: str) -> bytes:
    """A complete, well-formed daily aggregates answer: one bar per NYSE session of the range."""
    from gexhistory.calendar import ET, sessions_between

    parts = path.split("/")  # /v2/aggs/ticker/SPY/range/1/day/A/B
    start, end = dt.date.fromisoformat(parts[-2]), dt.date.fromisoformat(parts[-1])
    bars = []
    for i, s in enumerate(sessions_between(start, end)):
        t = int(dt.datetime.combine(s.date, dt.time(0, 0), tzinfo=ET).timestamp() * 1000)
        c = 450.0 + 20 * ((i % 40) / 40.0)
        bars.append({"t": t, "o": c - 0.5, "h": c + 1.5, "l": c - 1.5, "c": c, "v": 7.5e7, "vw": c, "n": 500000})
    body = json.dumps({"ticker": parts[4], "status": "OK", "adjusted": True, "queryCount": len(bars),
                       "resultsCount": len(bars), "count": len(bars), "request_id": "rel7", "results": bars}).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def _scan_for_key(db: str, folder: Path, out) -> list[str]:
    """Everywhere the key could leak to: printed output, every table, the raw database bytes, files."""
    leaks = []
    if KEY in out.stdout or KEY in out.stderr:
        leaks.append("output")
    from sqlalchemy import inspect

    from helpers import engine_for

    eng = engine_for(db)
    names = inspect(eng).get_table_names()
    eng.dispose()
    for table in names:
        if any(KEY in repr(r) for r in rows(db, f"SELECT * FROM {table}")):
            leaks.append(f"table {table}")
    for p in folder.rglob("*"):
        if p.is_file() and KEY.encode() in p.read_bytes():
            leaks.append(f"file {p.name}")
    return leaks


FAULTS = {
    # name: (behaviour or None for a closed port, words the error must contain)
    "connection-refused": (None, ["connection failed", "ConnectError", f"after {TRIES} tries"]),
    "slower-than-timeout": (lambda path: None, [f"timed out after {TIMEOUT:g}s", f"after {TRIES} tries"]),
    "closes-mid-body": (_cut_short, ["RemoteProtocolError", f"after {TRIES} tries"]),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_ends_in_one_clear_line_and_writes_no_session(fault, tmp_path):
    behaviour, words = FAULTS[fault]
    server = FaultyServer(behaviour) if behaviour else None
    if server is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed as soon as we leave the block
    else:
        base = server.url
    db = str(tmp_path / "gex_copilot.db")
    try:
        t0 = time.perf_counter()
        out = run_cli(["backfill", *WINDOW, "--db", db], tmp_path, env=_provider_env(base))
        took = time.perf_counter() - t0
    finally:
        if server:
            server.close()
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert out.returncode == 1, out.stderr
    assert len(lines) == 1 and lines[0].startswith("error: massive: "), out.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in out.stderr
    if server:
        assert len(server.paths) == TRIES  # bounded: exactly the configured tries, then stop
        assert len(set(server.paths)) == 1 and "/range/1/day/" in server.paths[0]
    assert took < 60
    for table in SESSION_TABLES:
        assert rows(db, f"SELECT COUNT(*) FROM {table}")[0][0] == 0
    last = runs(db)[-1]
    assert last[1] == "failed" and words[0] in last[3]
    assert _scan_for_key(db, tmp_path, out) == []


def test_fault_after_daily_bars_marks_nothing_complete(db_url, tmp_path):
    """Daily bars arrive whole, then every minute request is cut short: the window's sessions must not
    be written (the minute prices are part of every session), and the run says failed."""
    server = FaultyServer(lambda p: _daily_ok(p) if "/range/1/day/" in p else _cut_short(p))
    try:
        out = run_cli(["backfill", *WINDOW, "--db", db_url], tmp_path, env=_provider_env(server.url))
    finally:
        server.close()
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert out.returncode == 1, out.stderr
    assert len(lines) == 1 and "RemoteProtocolError" in lines[0] and "/range/1/minute/" in lines[0], out.stderr
    minute = [p for p in server.paths if "/range/1/minute/" in p]
    assert len(minute) == TRIES and any("/range/1/day/" in p for p in server.paths)
    for table in SESSION_TABLES:
        assert rows(db_url, f"SELECT COUNT(*) FROM {table}")[0][0] == 0
    assert runs(db_url)[-1][1] == "failed"
    assert _scan_for_key(db_url, tmp_path, out) == []
