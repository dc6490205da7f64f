"""`gexhistory serve` refuses bad targets with one `error:` line and exit code 2, before listening."""

from __future__ import annotations

import socket

from helpers import run_cli


def test_busy_port_is_bad_input(tmp_path):
    from gexhistory.store.db import init_schema, open_engine

    engine = open_engine(str(tmp_path / "x.db"))
    init_schema(engine)  # a database that exists: a missing one is refused first (below)
    engine.dispose()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = run_cli(["serve", "--port", str(port), "--db", str(tmp_path / "x.db")], cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith("error: cannot listen on 127.0.0.1:") and len(res.stderr.strip().splitlines()) == 1


def test_not_a_database_is_bad_input(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("these are not the rows you are looking for\n")
    res = run_cli(["serve", "--db", str(bad), "--port", "1"], cwd=tmp_path)
    assert res.returncode == 2 and "is not an SQLite database" in res.stderr
    assert bad.read_text().startswith("these are not")


def test_bad_port_is_bad_input(tmp_path):
    res = run_cli(["serve", "--port", "70000"], cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.startswith("error:")
    assert not (tmp_path / "gex_copilot.db").exists()


def test_database_that_does_not_exist_is_bad_input(tmp_path):
    """A typo in --db used to serve an empty page; the error names the file and the backfill that fills it."""
    r = run_cli(["serve", "--db", "nothere.db", "--port", "1"], tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: no database at {tmp_path / 'nothere.db'}")
    assert "--db nothere.db" in r.stderr and not (tmp_path / "nothere.db").exists()
