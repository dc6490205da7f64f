"""How the pages name the database they show: enough to tell databases apart, nothing more.

A page may be seen by anyone who can reach the server, so it never shows the directories a file sits in
(user names, project layout) nor a URL's user or password: an SQLite file by its name, a PostgreSQL
database as host/dbname.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from urllib.parse import unquote

from gexhistory.config import database_url


def _server_parts(url: str) -> tuple[str, str, str]:
    """(host, port, dbname) of a postgresql URL, read after the last '@': a password may itself hold an
    unescaped '@' or '/' (seen in the wild), and a parser that splits at the first would show part of it."""
    tail = url.split("://", 1)[1].rsplit("@", 1)[-1]
    hostport, _, rest = tail.partition("/")
    m = re.fullmatch(r"(.*?)(?::(\d+))?", hostport)
    return unquote(m.group(1)), m.group(2) or "", unquote(rest.split("?", 1)[0])


def shown_name(db: str | None) -> str:
    """'gex_copilot.db' for any path to that file; 'host/dbname' (or 'dbname' over a local socket)."""
    url = database_url(db)
    if url.startswith("sqlite:///"):
        return PurePath(url[len("sqlite:///"):]).name
    host, _, name = _server_parts(url)
    return f"{host}/{name}" if host else name or "database"


def shown_db_arg(db: str | None) -> str | None:
    """What a page's suggested commands pass as --db (None: no --db, as the server was started):
    the file name (run from its folder) or the URL without credentials (libpq's PGUSER/PGPASSWORD
    or ~/.pgpass supply them)."""
    if not db:
        return None
    url = database_url(db)
    if url.startswith("sqlite:///"):
        return shown_name(db)
    host, port, name = _server_parts(url)
    return f"postgresql://{host}{':' + port if port else ''}/{name}"
