"""Shared fixtures: every database test runs on SQLite and on the real PostgreSQL.

PostgreSQL is reached through GEXHISTORY_TEST_PG_URL (an admin URL such as
postgresql://postgres@127.0.0.1:5432/test; .ci/run sets it). Each pytest process creates its own
database, so parallel runs never see each other's rows, and drops it at the end. When the variable is
set and the server is unreachable the tests fail; they skip only when it is unset.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

# Test the checkout this file lives in, even when another checkout is the installed editable one.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PG_ENV = "GEXHISTORY_TEST_PG_URL"


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture(scope="session")
def pg_database_url():
    admin = _pg_admin_url()
    if not admin:
        pytest.skip(f"{PG_ENV} is not set")
    import psycopg

    name = f"gexh_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_conninfo = admin.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_conninfo.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_pg(url: str) -> None:
    from sqlalchemy import create_engine

    from gexhistory.config import database_url
    from gexhistory.store.schema import metadata

    engine = create_engine(database_url(url))
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty database: a file path for SQLite, a postgresql:// URL for PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "gex_copilot.db")
    url = request.getfixturevalue("pg_database_url")
    _reset_pg(url)
    return url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stored_db(request, tmp_path_factory):
    """(db, results): SPY and QQQ (synthetic) and IWM (CSV bars) backfilled once per module and backend
    through gx.backfill (tests/api_data.py). On PostgreSQL it is the per-process database emptied
    first, so a module using it takes no `db_url`, which would empty it again mid-module."""
    from api_data import empty_pg, fill  # lazy: pandas and the API load only for the modules that use it

    folder = tmp_path_factory.mktemp("stored")
    if request.param == "sqlite":
        db = str(folder / "gex.db")
    else:
        db = request.getfixturevalue("pg_database_url")
        empty_pg(db)
    return db, fill(db, folder)
