"""`gexhistory serve` refuses bad targets with one `error:` line and exit code 2, before listening."""

from __future__ import annotations

import socket

from helpers import run_cli


def test_busy_port_is_bad_input(tmp_path):
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
