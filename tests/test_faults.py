"""Faults end in one line and the right exit code, never a traceback (issue 18).

The rule: bad input (what the user gave: arguments, files, credentials, a database name) is exit 2;
a failure of something outside that may succeed on retry (a database server down or lost mid-run, a
lock held by another writer) is exit 1; a bug is `error: internal error: ...` naming a log file that
holds its traceback, exit 1. PostgreSQL faults are exercised at a closed port, at a server that
closes every connection, and through a proxy that drops the connections mid-run.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import REPO, rows, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

NOISE = ("Traceback", "error ignored", "probably means", "cannot join current thread", "Pipeline")


def _one_error_line(out: subprocess.CompletedProcess) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    for noise in NOISE:
        assert noise not in out.stderr + out.stdout, out.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


# -- the last resort: a bug is one line and a log file ------------------------------------------------

BUGS = [  # (case, the exception the patched run_backfill raises, what the line must say)
    ("KeyError", "KeyError('no_such_column')", "internal error: KeyError: 'no_such_column'"),
    ("ZeroDivisionError", "ZeroDivisionError('division by zero')", "internal error: ZeroDivisionError: division by zero"),
    ("a message of several lines", "RuntimeError('first line\\nsecond line')", "internal error: RuntimeError: first line"),
    ("no message", "AssertionError()", "internal error: AssertionError ("),
    ("a password in the message", "ValueError('cannot use postgresql://u:se@cret@db.example/gex')",
     "internal error: ValueError: cannot use postgresql://u:***@db.example/gex"),
]


def _crash(tmp_path: Path, raise_expr: str, env: dict) -> subprocess.CompletedProcess:
    """`gexhistory backfill` in a fresh process whose run_backfill raises `raise_expr` (a bug stand-in)."""
    code = ("import gexhistory.pipeline.backfill as b\n"
            f"def boom(*a, **k):\n    raise {raise_expr}\n"
            "b.run_backfill = boom\n"
            "from gexhistory.cli.main import main\n"
            "main(['backfill', '--days', '5', '--source', 'synthetic', '--quiet', "
            "'--db', 'postgresql://u:se@cret@db.example/gex'])\n")
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_PATH")}
    full.update(PYTHONPATH=str(REPO / "src"), **env)
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=full, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("case, raise_expr, says", BUGS, ids=[b[0] for b in BUGS])
def test_a_bug_is_one_line_and_a_log_with_its_traceback(tmp_path, case, raise_expr, says):
    logs = tmp_path / "logs"
    out = _crash(tmp_path, raise_expr, {"GEXHISTORY_LOG_DIR": str(logs)})
    assert out.returncode == 1, out.stderr
    line = _one_error_line(out)
    assert line.startswith(f"error: {says}"), line
    assert line.endswith(".log)") and f"(traceback in {logs}" in line
    (log,) = logs.iterdir()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in boom" in text
    assert "se@cret" not in text + out.stderr and "u:***@db.example" in text


def test_the_log_falls_back_to_the_cache_then_the_temporary_folder(tmp_path):
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    cache = tmp_path / "cache"
    out = _crash(tmp_path, "KeyError('x')", {"GEXHISTORY_LOG_DIR": str(blocked / "logs"), "XDG_CACHE_HOME": str(cache)})
    assert out.returncode == 1 and f"(traceback in {cache / 'gexhistory' / 'logs'}" in _one_error_line(out)
    cache2 = tmp_path / "cache2"
    (cache2 / "gexhistory").mkdir(parents=True)
    (cache2 / "gexhistory" / "logs").write_text("")  # the cache folder cannot take it either
    out = _crash(tmp_path, "KeyError('x')", {"GEXHISTORY_LOG_DIR": str(blocked / "logs"), "XDG_CACHE_HOME": str(cache2),
                                             "TMPDIR": str(tmp_path)})
    assert out.returncode == 1 and f"(traceback in {tmp_path}/gexhistory-crash-" in _one_error_line(out)


def test_an_engine_thread_pool_finalised_from_its_own_thread_does_not_join_itself():
    """The `RuntimeError: cannot join current thread` of a --jobs 2 run whose database died: the
    computation's generator, left to the garbage collector, was finalised in one of its own engine
    threads, which then waited for itself. Here it is closed from that thread on purpose."""
    from gexhistory.calendar import sessions_before, sessions_between
    from gexhistory.engine.chain_model import ModelParams
    from gexhistory.engine.exposure import Conventions
    from gexhistory.engine.signals import SCALE_WINDOW
    from gexhistory.engine.summary import CORR_WINDOW
    from gexhistory.pipeline import compute
    from gexhistory.sources.synthetic import SyntheticMarket

    first = dt.date(2024, 1, 2)
    context = len(sessions_before(first, max(CORR_WINDOW + 1, SCALE_WINDOW)))
    # A chunk queued after the one that yields the first session: it runs while the generator is suspended.
    trigger = context // compute.COMPUTE_CHUNK + 3
    real, calls, errors, holder = compute.compute_gex, [0], [], {}
    suspended, finished = threading.Event(), threading.Event()

    def closing_from_the_pool(*args, **kwargs):
        calls[0] += 1
        if calls[0] == trigger:
            suspended.wait(30)
            try:
                holder["gen"].close()
            except BaseException as exc:  # noqa: BLE001 - what the test looks for
                errors.append(exc)
            finished.set()
        return real(*args, **kwargs)

    compute.compute_gex = closing_from_the_pool
    try:
        gen = compute.compute_sessions(SyntheticMarket(42), "SPY", sessions_between(first, dt.date(2024, 12, 31)),
                                       Conventions(), ModelParams(), threads=2)
        holder["gen"] = gen
        next(gen)
        suspended.set()
        assert finished.wait(60)
    finally:
        compute.compute_gex = real
    assert errors == []


# -- exit codes: database targets ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Closer:
    """A TCP server that accepts every connection and closes it at once (a server crashing at start)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


TARGETS = [  # (case, --db given (PORT: a closed port, CLOSER: the closing server), exit code, words of the line)
    ("empty --db", "", 2, "--db is empty"),
    ("blank --db", "   ", 2, "--db is empty"),
    ("postgresql:// alone", "postgresql://", 2, "names no database"),
    ("no database name", "postgresql://gex:pw@127.0.0.1:5432/", 2, "names no database"),
    ("no database name, a query", "postgresql://gex@127.0.0.1:5432?sslmode=disable", 2, "names no database"),
    ("unsupported scheme", "mysql://gex:s@cret@host/gex", 2, "unsupported database URL scheme in 'mysql://gex:***@host/gex'"),
    ("server not listening", "postgresql://gex:s@cret@127.0.0.1:PORT/gex", 1, "Connection refused"),
    ("server closing connections", "postgresql://gex:s@cret@127.0.0.1:CLOSER/gex", 1,
     "server closed the connection unexpectedly"),
]


@pytest.mark.parametrize("command", [["backfill", "--days", "5", "--source", "synthetic"], ["status"], ["init"]])
@pytest.mark.parametrize("case, db, code, words", TARGETS, ids=[t[0] for t in TARGETS])
def test_database_targets(tmp_path, case, db, code, words, command):
    closer = _Closer() if "CLOSER" in db else None
    try:
        db = db.replace("PORT", str(_free_port())).replace("CLOSER", str(closer.port if closer else 0))
        out = run_cli([*command, "--db", db], tmp_path)
    finally:
        if closer:
            closer.stop()
    assert out.returncode == code, out.stderr
    line = _one_error_line(out)
    assert words in line and "s@cret" not in out.stderr and "cret@" not in line, line
    assert list(tmp_path.iterdir()) == []  # no ./gex_copilot.db made in its place


def test_a_server_that_never_answers_is_exit_1_within_the_timeout(tmp_path):
    """The connection is taken (a listening socket nobody accepts from) and nothing comes back: the
    URL's connect_timeout ends it (15 s when the URL sets none), one line, exit 1."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        out = run_cli(["status", "--db", f"postgresql://gex@127.0.0.1:{port}/gex?connect_timeout=1"], tmp_path)
    assert out.returncode == 1 and time.monotonic() - t0 < 10, out.stderr
    assert "timeout expired" in _one_error_line(out)


# -- exit codes: a lock another writer holds --------------------------------------------------------

def _hold_lock(db: Path, stop: threading.Event, held: threading.Event) -> None:
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    conn.execute("BEGIN EXCLUSIVE")
    held.set()
    stop.wait(120)
    conn.execute("ROLLBACK")
    conn.close()


def _locked_env() -> dict:
    return {"GEXHISTORY_SQLITE_BUSY_SECONDS": "0.5", "GEXHISTORY_BATCH_SESSIONS": "5", "GEXHISTORY_PROCESSES": "1"}


def test_a_lock_held_at_start_is_exit_1(tmp_path):
    db = tmp_path / "g.db"
    assert run_cli(["backfill", "--start", "2024-01-02", "--end", "2024-01-31", "--source", "synthetic", "--quiet",
                    "--db", str(db)], tmp_path).returncode == 0
    stop, held = threading.Event(), threading.Event()
    locker = threading.Thread(target=_hold_lock, args=(db, stop, held))
    locker.start()
    try:
        assert held.wait(30)
        out = run_cli(["backfill", "--start", "2024-02-01", "--end", "2024-02-29", "--source", "synthetic", "--quiet",
                       "--db", str(db)], tmp_path, env=_locked_env())
    finally:
        stop.set()
        locker.join()
    assert out.returncode == 1, out.stderr
    assert "database is locked" in _one_error_line(out)


def test_a_lock_taken_mid_run_is_exit_1(tmp_path):
    db = tmp_path / "g.db"
    cmd = [sys.executable, "-m", "gexhistory", "backfill", "--start", "2016-01-04", "--end", "2024-12-31",
           "--source", "synthetic", "--quiet", "--db", str(db)]
    env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_PATH")},
           "PYTHONPATH": str(REPO / "src"), **_locked_env()}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, held = threading.Event(), threading.Event()
    locker = threading.Thread(target=_hold_lock, args=(db, stop, held))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _sessions_stored(db):
            time.sleep(0.02)
        locker.start()
        assert held.wait(30)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        stop.set()
        if locker.is_alive():
            locker.join()
        proc.kill()
    out = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    assert out.returncode == 1, stderr
    assert "database is locked" in _one_error_line(out)


def _sessions_stored(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return conn.execute("SELECT COUNT(*) FROM gamma_daily_summary").fetchone()[0] > 0
        finally:
            conn.close()
    except sqlite3.Error:
        return False


# -- PostgreSQL lost mid-run ------------------------------------------------------------------------

class _Proxy:
    """A TCP proxy to the test PostgreSQL server whose `drop()` closes every connection and refuses new
    ones: to its clients, the server died mid-run."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self):
        try:  # wakes the accepting thread and stops listening at once (close alone does neither on Linux)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


@pytest.mark.postgres
@pytest.mark.parametrize("symbols, jobs", [("SPY", "1"), ("SPY,QQQ", "2")], ids=["one symbol", "two symbols, --jobs 2"])
def test_postgresql_lost_mid_run_is_exit_1_without_noise(pg_database_url, tmp_path, symbols, jobs):
    from conftest import _reset_pg
    from sqlalchemy.engine import make_url

    _reset_pg(pg_database_url)
    real = make_url(pg_database_url)
    proxy = _Proxy((real.host or "127.0.0.1", real.port or 5432))
    via_proxy = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    cmd = [sys.executable, "-m", "gexhistory", "backfill", "--start", "2016-01-04", "--end", "2024-12-31",
           "--source", "synthetic", "--symbols", symbols, "--jobs", jobs, "--quiet", "--db", via_proxy]
    env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_PATH")},
           "PYTHONPATH": str(REPO / "src"), "GEXHISTORY_BATCH_SESSIONS": "5"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _pg_sessions(pg_database_url):
            time.sleep(0.02)
        proxy.drop()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    for noise in NOISE:
        assert noise not in stderr + stdout, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr
    assert all(line.startswith(("error: ", "SPY: FAILED", "QQQ: FAILED")) for line in lines), stderr
    if jobs == "1":
        assert len(lines) == 1, stderr


def _pg_sessions(url: str) -> bool:
    try:
        return rows(url, "SELECT COUNT(*) FROM gamma_daily_summary")[0][0] > 0
    except Exception:  # noqa: BLE001 - the table does not exist yet
        return False


# -- passwords are hidden whole ---------------------------------------------------------------------

REDACTED = [  # (a URL as a user may write it, what every message shows)
    ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u:tPW@host:5432/db?sslmode=require", "postgresql://u:***@host:5432/db?sslmode=require"),
    ("postgresql://u:a@b@c@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u:pa:ss@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u:p/ss@host/db", "postgresql://u:***@host/db"),
    ("postgres://u:%40pw@host/db", "postgres://u:***@host/db"),
    ("postgresql://:only@host/db", "postgresql://:***@host/db"),
    ("postgresql://u:pw@host:notaport/db", "postgresql://u:***@host:notaport/db"),
    ("postgresql://u:pw@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
    ("postgresql://u@host/db", "postgresql://u@host/db"),
    ("postgresql://host/db", "postgresql://host/db"),
    ("mysql://u:p@ss@host/db", "mysql://u:***@host/db"),
    ("/home/me/gex@2024.db", "/home/me/gex@2024.db"),
]


@pytest.mark.parametrize("url, shown", REDACTED, ids=[r[0] for r in REDACTED])
def test_redact_url(url, shown):
    from gexhistory.config import redact_url

    assert redact_url(url) == shown


def test_a_password_with_at_signs_reaches_the_server_whole(pg_database_url, tmp_path):
    """The URL is split at the last '@' (a host never holds one) and the password percent-encoded, so the
    connection goes to the right host: before, 'p@ss@host' connected to a host named 'ss@host' and printed
    the password's tail in its error. The test server trusts its clients, so any password logs in."""
    from sqlalchemy.engine import make_url

    real = make_url(pg_database_url)
    url = f"postgresql://{real.username}:p@ss:w/rd@{real.host}:{real.port or 5432}/{real.database}"
    out = run_cli(["init", "--db", url], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"initialised postgresql+psycopg://{real.username}:***@{real.host}")
    assert "ss:w" not in out.stdout + out.stderr


_PASSWORDS = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="?"), min_size=1,
                     max_size=24)


@settings(max_examples=300, deadline=None)
@given(user=st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True), password=_PASSWORDS)
def test_any_password_is_hidden_whole_and_reaches_the_driver_whole(user, password):
    """For any printable password ('?' starts the query in every URL parser): the message shows
    user:***@host, and SQLAlchemy reads back exactly the user and password given (so the host is right)."""
    from sqlalchemy.engine import make_url

    from gexhistory.config import database_url, redact_url

    raw = f"postgresql://{user}:{password}@db.example:5432/gex"
    assert redact_url(raw) == f"postgresql://{user}:***@db.example:5432/gex"
    url = make_url(database_url(raw))
    assert (url.username, url.password, url.host, url.port, url.database) == (user, _unquoted(password),
                                                                              "db.example", 5432, "gex")
    assert redact_url(database_url(raw)) == f"postgresql+psycopg://{user}:***@db.example:5432/gex"


def _unquoted(password: str) -> str:
    """What a password means: a user who percent-encoded it (as URLs require) meant the decoded text."""
    from urllib.parse import unquote

    return unquote(password)
