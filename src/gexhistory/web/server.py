"""Running the app with uvicorn: what `gexhistory serve` calls."""

from __future__ import annotations

import os
import socket

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from gexhistory.config import database_url, redact_url
from gexhistory.errors import BadInput
from gexhistory.store.readonly import UnreadableWal, open_readonly, sqlite_path
from gexhistory.web.app import create_app
from gexhistory.web.views import fill_command

# How the parent hands --db to its worker processes, which build their app with app_from_env().
DB_ENV = "GEXHISTORY_SERVE_DB"
# A connection idle after a response is closed after this many seconds (uvicorn's own timer); requests
# that never finish and responses nobody reads have their deadlines in guard.py.
KEEP_ALIVE_SECONDS = 5


def default_workers() -> int:
    """One worker process per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def app_from_env():
    """The app factory each worker process calls (uvicorn needs an import string to start workers)."""
    return create_app(os.environ.get(DB_ENV) or None)


def serve(db: str | None, host: str = "127.0.0.1", port: int = 8000, workers: int | None = None) -> None:
    """Serve the pages for `db` until interrupted. Bad database targets and busy ports are bad input."""
    url = database_url(db)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        # Serving a path that does not exist would show an empty page for what is most often a typo or
        # the wrong folder; the pages never create the file, so nothing would ever fill that view.
        raise BadInput(f"no database at {path}: fill it first with `{fill_command(db)}`, or point --db at "
                       f"an existing database")
    if path is not None:
        if not path.is_file():
            raise BadInput(f"database path {path} is not a file")
        with path.open("rb") as fh:
            head = fh.read(16)
        if head and head != b"SQLite format 3\x00":
            raise BadInput(f"{path} is not an SQLite database (corrupt or another kind of file)")
    # Open it as every request will, and read from it: a database the server could not read (an
    # unreachable server, a WAL file on a read-only mount) fails here with one line, not 500 per request.
    try:
        with open_readonly(db).connect() as conn:
            conn.exec_driver_sql("SELECT 1")
            if path is not None:
                conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").fetchall()
    except UnreadableWal as exc:
        raise BadInput(str(exc)) from None
    except SQLAlchemyError as exc:
        raise BadInput(f"cannot use database {redact_url(url)}: {str(exc.orig or exc).splitlines()[0]}") from None
    _check_port(host, port)
    workers = workers or default_workers()
    if db is None:
        os.environ.pop(DB_ENV, None)
    else:
        os.environ[DB_ENV] = db
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    print(f"gexhistory: serving {redact_url(url)} at http://{shown}:{port}/gex/history with {workers} worker"
          f"{'s' if workers > 1 else ''} (read-only; Ctrl-C stops)", flush=True)
    uvicorn.run("gexhistory.web.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                http="gexhistory.web.guard:GuardedH11Protocol", timeout_keep_alive=KEEP_ALIVE_SECONDS,
                server_header=False, log_level="warning", access_log=False)


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
