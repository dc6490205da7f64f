"""Pages name their database by file name or host/dbname only: never a directory, user or password.

A table of database arguments against the name shown, then every page (the empty one, each view, the
404 and 400 pages) as served for a real SQLite file deep in a folder and a real PostgreSQL database
reached with a user and password, searched for anything of the path or the credentials.
"""

from __future__ import annotations

import datetime as dt

import pytest

from gexhistory.web.dbname import shown_db_arg, shown_name

# (--db as given, name on the pages, --db in the commands the pages suggest)
CASES = [
    ("/home/ann/secret-project/gex_copilot.db", "gex_copilot.db", "gex_copilot.db"),
    ("gex.db", "gex.db", "gex.db"),
    ("~/data/x.sqlite", "x.sqlite", "x.sqlite"),
    ("sqlite:////srv/gex/prod.db", "prod.db", "prod.db"),
    ("postgresql://gex:hunter2@db.internal:5433/gex", "db.internal/gex", "postgresql://db.internal:5433/gex"),
    ("postgres://gex@db.internal/gex", "db.internal/gex", "postgresql://db.internal/gex"),
    ("postgresql+psycopg://u:p@ss@h/gex", "h/gex", "postgresql://h/gex"),  # '@' in the password
    ("postgresql://u:pa/ss@h:1/gex?sslmode=require", "h/gex", "postgresql://h:1/gex"),  # '/' in the password
    ("postgresql://u:pw@[::1]:5432/gex", "[::1]/gex", "postgresql://[::1]:5432/gex"),
    ("postgresql:///gex?host=/var/run/postgresql", "gex", "postgresql:///gex"),
]


@pytest.mark.parametrize("db,name,arg", CASES)
def test_name_shown_for_each_kind_of_database(db, name, arg):
    assert shown_name(db) == name
    assert shown_db_arg(db) == arg


def test_no_db_argument_adds_none():
    assert shown_db_arg(None) is None


PAGES = {"/gex/history": 200, "/gex/profile": 200, "/gamma": 200, "/psychology/performance": 200,
         "/probability": 200, "/gamma?symbol=QQQQ": 404, "/no/such/page": 404, "/gex/history?days=-2": 400}


def test_pages_never_show_the_folder_or_credentials(db_url, tmp_path):
    from fastapi.testclient import TestClient

    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
    from gexhistory.store.db import init_schema, open_engine
    from gexhistory.web.app import create_app

    if db_url.startswith("postgresql"):
        # Same server and database, reached with a password (trust auth ignores it) the pages must hide.
        user = db_url.split("://", 1)[1].split("@", 1)[0]
        db = db_url.replace(f"://{user}@", f"://{user}:s3cr%40t-pw@")
        hidden = [user + "@", user + ":", "s3cr", "t-pw"]
        name = f"127.0.0.1/{db_url.rsplit('/', 1)[1]}"
    else:
        folder = tmp_path / "private-folder" / "deeper"
        folder.mkdir(parents=True)
        db = str(folder / "gex_copilot.db")
        hidden = [str(tmp_path), "private-folder", "deeper"]
        name = "gex_copilot.db"
    engine = open_engine(db)
    init_schema(engine)
    engine.dispose()

    def get(client, url, status):
        r = client.get(url)
        assert r.status_code == status, url
        assert f"<span>{name}</span>" in r.text, url  # the footer names it
        leaks = [h for h in hidden if h in r.text]
        assert leaks == [], (url, leaks)

    app = create_app(db)
    with TestClient(app) as client:
        get(client, "/gex/history", 200)  # empty: the page that suggests the fill command
    app.state.db.dispose()
    run_backfill(BackfillOptions(["SPY"], dt.date(2024, 11, 1), dt.date(2024, 12, 20), source="synthetic", db=db))
    app = create_app(db)
    with TestClient(app) as client:
        for url, status in PAGES.items():
            get(client, url, status)
    app.state.db.dispose()
