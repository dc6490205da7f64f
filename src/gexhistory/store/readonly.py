"""A read-only Engine for the web pages: SQLite opened with mode=ro, PostgreSQL read-only transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import QueuePool

from gexhistory.config import database_url


def sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def open_readonly(db: str | None) -> Engine | None:
    """An Engine that cannot write, or None while the SQLite file does not exist yet (nothing to show)."""
    url = database_url(db)
    path = sqlite_path(url)
    if path is not None:
        if not path.is_file():
            return None
        uri = f"file:{quote(str(path))}?mode=ro"

        def connect():
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA query_only=ON")
            return conn

        return create_engine("sqlite://", creator=connect, poolclass=QueuePool)
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"options": "-c default_transaction_read_only=on"})
