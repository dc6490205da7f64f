"""A read-only Engine for the web pages: SQLite opened with mode=ro, PostgreSQL read-only transactions.

An SQLite file in WAL mode cannot be read with mode=ro alone where its folder is not writable (a
read-only mount, a package folder, a CD): even a reader must create the -shm index beside it. There the
file is opened as immutable, which reads it without locks or the -shm; that is safe because nothing
can write to the folder either (an unmerged -wal left there would be ignored, so it is refused).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import QueuePool

from gexhistory.config import database_url


def sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


class UnreadableWal(Exception):
    """A -wal with changes not yet merged beside a file in a folder nobody can write."""


def sqlite_uri(path: Path) -> str:
    """file: URI opening `path` read-only: immutable when its folder is not writable (see above)."""
    uri = f"file:{quote(str(path))}?mode=ro"
    if os.access(path.parent, os.W_OK):
        return uri
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise UnreadableWal(f"{wal} holds changes not merged into {path.name}, and its folder is read-only: "
                            f"open the database once where it is writable (any gexhistory command) to merge them")
    return uri + "&immutable=1"


def open_readonly(db: str | None) -> Engine | None:
    """An Engine that cannot write, or None while the SQLite file does not exist yet (nothing to show)."""
    url = database_url(db)
    path = sqlite_path(url)
    if path is not None:
        if not path.is_file():
            return None
        uri = sqlite_uri(path)

        def connect():
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA query_only=ON")
            return conn

        return create_engine("sqlite://", creator=connect, poolclass=QueuePool)
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"options": "-c default_transaction_read_only=on"})
