"""`serve` on a read-only filesystem: a WAL-mode SQLite file on a folder nobody can write is read (opened
immutable) instead of answering 500 to every request, and an unmerged -wal there fails at start with one
line. Proven on a real read-only mount (a tmpfs remounted ro) when the tests run as root, where chmod
would not stop anything; as another user, on a chmod 0555 folder.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import urllib.request

import pytest

from helpers import run_cli
from test_pages_browser import _start, _stop


@pytest.fixture
def frozen_folder(tmp_path):
    """(folder, freeze): freeze() makes the folder read-only for real, whoever runs the tests."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = False
    if os.geteuid() == 0:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"running as root without the right to mount a read-only tmpfs: {r.stderr.decode().strip()}")
        mounted = True

    def freeze():
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        else:
            folder.chmod(0o555)

    yield folder, freeze
    if mounted:  # lazily if a process is still closing its file: never leave the mount behind
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)
    else:
        folder.chmod(0o755)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("filled")
    db = folder / "gex_copilot.db"
    assert run_cli(["backfill", "--symbols", "SPY", "--days", "30", "--quiet", "--db", str(db)], folder).returncode == 0
    assert not db.with_name(db.name + "-wal").exists()  # merged when the last writer closed
    return db


def test_serves_a_wal_database_from_a_read_only_folder(filled, frozen_folder):
    from gexhistory.store.readonly import sqlite_uri

    folder, freeze = frozen_folder
    db = folder / filled.name
    shutil.copy(filled, db)
    assert sqlite_uri(db).endswith("?mode=ro")  # writable folder: the ordinary read-only open
    freeze()
    with pytest.raises(OSError):
        (folder / "probe").write_bytes(b"")
    # What the server did before: mode=ro alone cannot read a WAL file here (it must create the -shm).
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        with pytest.raises(sqlite3.OperationalError, match="unable to open database file"):
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    finally:
        conn.close()
    assert sqlite_uri(db).endswith("?mode=ro&immutable=1")
    before = db.read_bytes()
    proc, base = _start(str(db))
    try:
        for path in ("/gex/history", "/gamma", "/probability", "/api/gex/history?days=all"):
            with urllib.request.urlopen(base + path, timeout=30) as r:
                assert r.status == 200, path
                assert b"SPY" in r.read(), path
    finally:
        _stop(proc)
    assert db.read_bytes() == before


def test_unmerged_wal_in_a_read_only_folder_fails_at_start(filled, frozen_folder, tmp_path):
    folder, freeze = frozen_folder
    work = tmp_path / "work.db"
    shutil.copy(filled, work)
    writer = sqlite3.connect(work)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("DELETE FROM gex_history WHERE rowid IN (SELECT rowid FROM gex_history LIMIT 3)")
        writer.commit()
        wal = work.with_name(work.name + "-wal")
        assert wal.stat().st_size > 0
        shutil.copy(work, folder / "gex.db")  # the file and its log as a crash would leave them
        shutil.copy(wal, folder / "gex.db-wal")
    finally:
        writer.close()
    freeze()
    res = run_cli(["serve", "--db", str(folder / "gex.db"), "--port", "1"], tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: {folder / 'gex.db-wal'} holds changes not merged into gex.db")
