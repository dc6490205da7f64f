"""Opening a database (SQLite file in WAL mode, or PostgreSQL via psycopg 3) and creating the schema."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DatabaseError as DriverDatabaseError, OperationalError

from gexhistory.config import database_url, env_float, redact_url
from gexhistory.errors import BadDatabase, BadInput, DatabaseError
from gexhistory.words import plural
from gexhistory.store.schema import PG_STORAGE, metadata

SQLITE_BUSY_MS = 30_000  # default wait for another writer's lock; GEXHISTORY_SQLITE_BUSY_SECONDS changes it
BUSY_ENV = "GEXHISTORY_SQLITE_BUSY_SECONDS"
PG_CONNECT_TIMEOUT_S = 15
SCHEMA_LOCK_KEY = 0x6765_7868  # 'gexh': the advisory lock schema changes queue on (PostgreSQL)


def _sqlite_path(url: str) -> Path:
    return Path(url[len("sqlite:///"):])


def _check_sqlite_target(path: Path, must_exist: bool) -> None:
    if path.exists():
        if path.is_dir():
            raise BadDatabase(f"database path {path} is a directory")
        if not os.access(path, os.R_OK):
            raise BadDatabase(f"database file {path} is not readable")
        with path.open("rb") as fh:
            head = fh.read(16)
        if head and head != b"SQLite format 3\x00":
            raise BadDatabase(f"{path} is not an SQLite database (corrupt or another kind of file)")
    elif must_exist:
        raise BadDatabase(f"database file {path} does not exist: run `gexhistory init` or a backfill first")
    else:
        parent = path.parent
        if not parent.is_dir():
            raise BadDatabase(f"cannot create database {path}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise BadDatabase(f"cannot create database {path}: folder {parent} is not writable")


# Loggers that report, as warnings, errors met while cleaning up after the error that matters (psycopg:
# "error ignored terminating <psycopg.Pipeline [BAD]>" with libpq's second line; SQLAlchemy's pool: a
# failed rollback on a dead connection, with its traceback). With no handler of their own Python's
# last-resort handler prints them under the one error line; the error raised says what happened.
_CLEAN_UP_LOGGERS = ("psycopg", "sqlalchemy.pool")


def _quiet_clean_up_logs() -> None:
    for name in _CLEAN_UP_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
            log.addHandler(logging.NullHandler())  # still propagates to handlers an embedding program set up


def open_engine(db: str | None = None, *, must_exist: bool = False, write: bool = True,
                deferred_checkpoint: bool = False) -> Engine:
    """An Engine for --db / DATABASE_URL / DATABASE_PATH / ./gex_copilot.db; bad targets raise BadDatabase.
    `deferred_checkpoint` (SQLite): commits leave the write-ahead log to checkpoint_in_background."""
    url = database_url(db)
    _quiet_clean_up_logs()
    if url.startswith("sqlite:///"):
        path = _sqlite_path(url)
        _check_sqlite_target(path, must_exist)
        # Mode bits too: root passes os.access on a chmod 444 file, but the owner said read-only.
        if write and path.exists() and (not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222):
            raise BadDatabase(f"database file {path} is read-only")
        max_pages = _max_pages()
        busy_ms = busy_timeout_ms()
        engine = create_engine(url, connect_args={"timeout": busy_ms / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={busy_ms:d}")  # an int we computed: no user text in SQL
            cur.execute("PRAGMA foreign_keys=ON")
            if max_pages:
                cur.execute(f"PRAGMA max_page_count={max_pages:d}")  # an int we parsed: no user text in SQL
            if write:
                _wal(cur, busy_ms)
                cur.execute("PRAGMA synchronous=NORMAL")
            if deferred_checkpoint:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):  # noqa: ANN001
            # Take the write lock at BEGIN so two writers queue instead of deadlocking on upgrade.
            if write:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        # pysqlite's own transaction handling must be off for the BEGIN above to be ours.
        @event.listens_for(engine, "connect", insert=True)
        def _no_autobegin(dbapi_conn, _record):  # noqa: ANN001
            dbapi_conn.isolation_level = None

    else:
        # A server that takes the connection and never answers (a hung host, a half-dead proxy) would
        # otherwise hold the run forever; a URL's own connect_timeout wins.
        args = {} if "connect_timeout=" in url else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        engine = create_engine(url, pool_pre_ping=True, connect_args=args)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DriverDatabaseError as exc:
        engine.dispose()
        raise open_error(exc, f"database {redact_url(url)}") from None
    return engine


def checkpoint_in_background(engine: Engine) -> None:
    """SQLite: copy the write-ahead log into the database file on a thread of its own, for an engine
    opened with deferred_checkpoint, before it is disposed. After a large commit (a market-wide chain
    import writes ~28 MB) the copy and its two fsyncs take a tenth of a second or more, which the
    caller need not wait for: its rows are committed already, and a reader finds them in the log.
    The interpreter waits for the thread at exit; should the checkpoint fail, the next connection
    does it (SQLite's own recovery)."""
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return
    import threading

    # A connection of the engine's own (its file, its busy timeout), taken out of its pool before the
    # caller disposes of it: the pool's closes then leave the checkpoint to this one (the last
    # connection to close a database checkpoints it).
    pooled = engine.raw_connection()
    conn = pooled.driver_connection
    pooled.detach()

    def checkpoint() -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            logging.getLogger(__name__).debug("background checkpoint of %s failed", engine.url.database,
                                              exc_info=True)
        finally:
            conn.close()  # the last connection to close checkpoints what is left and removes the log

    threading.Thread(target=checkpoint, name="gexhistory-checkpoint").start()


# What the user must change (exit 2) when a database refuses a connection, as opposed to a server
# down, unreachable or restarting, a lock held by another writer, too many clients: a retry may do (exit 1).
_USER_FAULTS = ("password authentication failed", "no password supplied", "does not exist", "role ",
                "permission denied", "not a database", "malformed", "readonly", "read-only", "unable to open",
                "invalid", "unsupported")


def open_error(exc: BaseException, what: str) -> BadDatabase | DatabaseError:
    """A failure to open or initialise `what`, classified by the exit code rule: BadDatabase (2) for
    what the user gave (credentials, a database name, a file that is not a database), DatabaseError
    (1) for what may succeed on retry (an unreachable server, a lock another writer holds)."""
    msg = _first_line(exc)
    low = msg.lower()
    if "locked" in low or "busy" in low:
        return DatabaseError(f"cannot use {what}: {msg} (another process is writing; retry when it is done)")
    if isinstance(exc, OperationalError) and not any(k in low for k in _USER_FAULTS):
        return DatabaseError(f"cannot reach {what}: {msg}")
    return BadDatabase(f"cannot use {what}: {msg}")


def busy_timeout_ms() -> int:
    """How long an SQLite writer waits for another's lock before giving up (exit 1: a retry may do)."""
    return int(env_float(BUSY_ENV, SQLITE_BUSY_MS / 1000, 0, 86_400) * 1000)


def _wal(cur, busy_ms: int) -> None:
    """Switch a new file to WAL. The switch needs the file to itself for a moment and SQLite answers
    SQLITE_BUSY at once, without its busy handler, when another process has it open (two first runs
    started together): wait and retry within the busy timeout, as every other statement does."""
    deadline = time.monotonic() + busy_ms / 1000
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


MAX_PAGES_ENV = "GEXHISTORY_SQLITE_MAX_PAGES"


def _max_pages() -> int | None:
    """GEXHISTORY_SQLITE_MAX_PAGES caps an SQLite file's size in pages (a quota; SQLite's max_page_count)."""
    raw = os.environ.get(MAX_PAGES_ENV)
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise BadInput(f"{MAX_PAGES_ENV} must be a positive number of pages, got {raw!r}")
    return n


def user_error(exc: BaseException) -> BadDatabase | DatabaseError:
    """A database error met during work, as the one line the user sees (no SQL, no parameters).

    A corrupt file is the user's input (exit 2); a full disk, a lost server or a lock that never came
    free is a failure during work (exit 1).
    """
    msg = _first_line(exc)
    low = msg.lower()
    if "malformed" in low or "not a database" in low:
        return BadDatabase(f"the database is corrupt: {msg}")
    if "readonly" in low or "read-only" in low:
        return BadDatabase(f"the database is read-only: {msg}")
    return DatabaseError(f"database error: {msg}")


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


# What exists, in one query each (the inspector asks per table): the columns of every table, and the
# index names. Constant SQL, no values.
_SQLITE_COLUMNS = "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'"
_SQLITE_INDEXES = "SELECT name FROM sqlite_master WHERE type = 'index'"
_PG_COLUMNS = ("SELECT table_name, column_name FROM information_schema.columns "
               "WHERE table_schema = current_schema()")
_PG_INDEXES = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
# attstorage: 'p' plain, 'e' external, 'm' main, 'x' extended
_PG_STORAGE = ("SELECT c.relname, a.attname, a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
               "WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0 AND NOT a.attisdropped")
_STORAGE_CODE = {"PLAIN": "p", "EXTERNAL": "e", "MAIN": "m", "EXTENDED": "x"}


def _pg_storage_to_set(conn) -> list[tuple[str, str, str]]:
    """(table, column, storage) of PG_STORAGE that the database does not have yet."""
    have = {(t, c): k for t, c, k in conn.execute(text(_PG_STORAGE))}
    return [(t, c, want) for (t, c), want in PG_STORAGE.items() if have.get((t, c)) != _STORAGE_CODE[want]]


def schema_is_current(engine: Engine) -> bool:
    """Every table, column and index of the schema exists (the common case: a rerun has nothing to do)."""
    pg = engine.dialect.name == "postgresql"
    cols, idx = (_PG_COLUMNS, _PG_INDEXES) if pg else (_SQLITE_COLUMNS, _SQLITE_INDEXES)
    with engine.connect() as conn:
        have = {(t, c) for t, c in conn.execute(text(cols))}
        indexes = {name for (name,) in conn.execute(text(idx))}
        if pg and _pg_storage_to_set(conn):
            return False
    return all((t.name, c.name) in have for t in metadata.sorted_tables for c in t.columns) and all(
        i.name in indexes for t in metadata.sorted_tables for i in t.indexes)


def init_schema(engine: Engine) -> list[str]:
    """Create missing tables and add missing columns (idempotent). Returns what was created."""
    created: list[str] = []
    try:
        if schema_is_current(engine):
            return created
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two first runs at once would both CREATE TABLE and one would fail: queue them.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            # Inspect through the same connection: a second one would wait on our own write lock.
            insp = inspect(conn)
            existing = set(insp.get_table_names())
            if "option_chain_contracts" in existing and "strike" in {
                    c["name"] for c in insp.get_columns("option_chain_contracts")}:
                from gexhistory.store.chains import repack_row_contracts  # lazy: numpy and pyarrow, once per old database

                moved = repack_row_contracts(conn)
                created.append(f"option_chain_contracts (packed, {plural(moved, 'chain')} moved)")
            for table in metadata.sorted_tables:
                if table.name not in existing:
                    table.create(conn)
                    created.append(table.name)
                    continue
                have = {c["name"] for c in insp.get_columns(table.name)}
                for col in table.columns:
                    if col.name not in have:
                        coltype = col.type.compile(dialect=engine.dialect)
                        conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {coltype}')
                        created.append(f"{table.name}.{col.name}")
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
            if conn.dialect.name == "postgresql":
                for t, c, storage in _pg_storage_to_set(conn):  # names from schema.PG_STORAGE, not from input
                    conn.exec_driver_sql(f'ALTER TABLE {t} ALTER COLUMN "{c}" SET STORAGE {storage}')
                    if t in existing:  # a new table's storage is part of its creation, not news
                        created.append(f"{t}.{c} (storage {storage.lower()})")
    except DriverDatabaseError as exc:
        raise open_error(exc, "the database to initialise it") from None
    return created


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
