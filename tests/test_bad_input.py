"""Bad input through the CLI as a user types it (SPEC §8): one line `error: ...` on stderr, exit 2 for bad
input and 1 for a failure during work, no traceback, and the database left as it was.

Every case runs in a fresh folder holding a copy of a small valid database (./gex_copilot.db, also
passed as --db unless the case names another target). Afterwards the file's bytes (exit 2) or its
content (exit 1: the run log may record the failure) must be unchanged, and no other file may appear.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dbcheck import content_digest, file_sha256
from helpers import run_cli

DB = "gex_copilot.db"
CHAIN_HEADER = "date,underlying,expiration,strike,right,oi,iv\n"
CSV_RUN = ["backfill", "--source", "csv", "--bars", "bars.csv", "--start", "2024-12-02", "--end", "2024-12-06"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    needle: str
    env: dict = field(default_factory=dict)
    setup: str | None = None  # how to spoil the target before the run (see _prepare)
    db_arg: bool = True  # append --db ./gex_copilot.db
    script: str | None = None


CASES = [
    Case("days-zero", ["backfill", "--days", "0"], 2, "--days must be between 1 and"),
    Case("days-negative", ["backfill", "--days", "-5"], 2, "--days must be between 1 and"),
    Case("days-not-a-number", ["backfill", "--days", "abc"], 2, "'abc' is not a valid integer"),
    Case("days-absurd", ["backfill", "--days", "999999"], 2, "got 999999"),
    Case("start-malformed", ["backfill", "--start", "2024-13-01"], 2, "'2024-13-01' is not a date"),
    Case("start-words", ["backfill", "--start", "yesterday"], 2, "'yesterday' is not a date"),
    Case("end-malformed", ["backfill", "--start", "2024-01-02", "--end", "2024/02/01"], 2, "is not a date"),
    Case("end-in-future", ["backfill", "--start", "2024-01-02", "--end", "2999-01-01"], 2, "after the last completed session"),
    Case("end-before-start", ["backfill", "--start", "2024-03-01", "--end", "2024-01-02"], 2, "is before --start"),
    Case("days-and-start", ["backfill", "--days", "10", "--start", "2024-01-02"], 2, "either --days or --start"),
    Case("symbol-injection", ["backfill", "--symbol", "SPY;DROP"], 2, "malformed symbol 'SPY;DROP'"),
    Case("symbol-quote", ["backfill", "--symbol", "SPY' OR '1'='1"], 2, "malformed symbol"),
    Case("symbol-empty", ["backfill", "--symbol", ""], 2, "no symbol given"),
    Case("symbol-too-long", ["backfill", "--symbol", "ABCDEFGHIJKL"], 2, "malformed symbol"),
    Case("symbol-unknown-shape", ["backfill", "--symbol", "$SPX"], 2, "malformed symbol '$SPX'"),
    Case("symbols-bad-member", ["backfill", "--symbols", "SPY,Q Q"], 2, "malformed symbol 'Q Q'"),
    Case("symbol-and-symbols", ["backfill", "--symbol", "SPY", "--symbols", "QQQ"], 2, "either --symbol or --symbols"),
    Case("source-unknown", ["backfill", "--source", "bogus", "--days", "5"], 2, "unknown source 'bogus'"),
    Case("option-unknown", ["backfill", "--frobnicate"], 2, "No such option '--frobnicate'"),
    Case("command-unknown", ["frobnicate"], 2, "No such command 'frobnicate'", db_arg=False),
    Case("seed-not-a-number", ["backfill", "--seed", "abc"], 2, "'abc' is not a valid integer"),
    Case("rate-negative", ["backfill", "--rate", "-1"], 2, "--rate must be a number of requests per minute above 0"),
    Case("rate-infinite", ["backfill", "--rate", "inf"], 2, "at most 1e+06, got inf"),
    Case("rate-nan", ["backfill", "--rate", "nan"], 2, "at most 1e+06, got nan"),
    Case("seed-negative", ["backfill", "--seed", "-1", "--source", "synthetic"], 2,
         "--seed must be a whole number from 0 to 2**64-1, got -1"),
    Case("seed-too-big", ["backfill", "--seed", str(2**64), "--source", "synthetic"], 2, "--seed must be a whole"),
    Case("snapshot-rate-infinite", ["snapshot", "--rate", "inf", "--anytime"], 2, "--rate must be a number",
         env={"POLYGON_API_KEY": "pk_test_abcdef"}),
    Case("rate-not-a-number", ["backfill", "--rate", "fast"], 2, "'fast' is not a valid float"),
    Case("jobs-zero", ["backfill", "--symbols", "SPY,QQQ", "--jobs", "0"], 2, "--jobs must be between"),
    Case("jobs-not-a-number", ["backfill", "--jobs", "two"], 2, "'two' is not a valid integer"),
    Case("batch-env-zero", ["backfill", "--days", "5"], 2, "GEXHISTORY_BATCH_SESSIONS",
         env={"GEXHISTORY_BATCH_SESSIONS": "0"}),
    Case("batch-env-text", ["backfill", "--days", "5"], 2, "GEXHISTORY_BATCH_SESSIONS",
         env={"GEXHISTORY_BATCH_SESSIONS": "many"}),
    Case("threads-env-zero", ["backfill", "--days", "5", "--source", "synthetic"], 2,
         "GEXHISTORY_ENGINE_THREADS must be a whole number", env={"GEXHISTORY_ENGINE_THREADS": "0"}),
    Case("processes-env-text", ["backfill", "--days", "5", "--source", "synthetic"], 2,
         "GEXHISTORY_PROCESSES must be a whole number", env={"GEXHISTORY_PROCESSES": "two"}),
    Case("max-pages-env-text", ["backfill", "--days", "5", "--source", "synthetic"], 2,
         "GEXHISTORY_SQLITE_MAX_PAGES must be a positive number", env={"GEXHISTORY_SQLITE_MAX_PAGES": "lots"}),
    Case("busy-env-text", ["backfill", "--days", "5", "--source", "synthetic"], 2,
         "GEXHISTORY_SQLITE_BUSY_SECONDS='soon' is not a number", env={"GEXHISTORY_SQLITE_BUSY_SECONDS": "soon"}),
    Case("db-empty", ["backfill", "--days", "5", "--db", ""], 2, "--db is empty", db_arg=False),
    Case("db-url-without-database", ["backfill", "--days", "5", "--db", "postgresql://gex:hunter2@localhost"], 2,
         "names no database", db_arg=False),
    Case("db-is-directory", ["backfill", "--days", "5", "--db", "adir"], 2, "is a directory", setup="dir", db_arg=False),
    Case("db-folder-missing", ["backfill", "--days", "5", "--db", "nowhere/x.db"], 2, "folder", db_arg=False),
    Case("db-not-sqlite", ["backfill", "--days", "5", "--source", "synthetic"], 2, "is not an SQLite database",
         setup="text"),
    Case("db-corrupt-pages", ["backfill", "--days", "5", "--source", "synthetic"], 2, "corrupt", setup="corrupt"),
    Case("db-truncated", ["backfill", "--days", "5", "--source", "synthetic"], 2, "malformed", setup="truncate"),
    Case("db-read-only", ["backfill", "--days", "5", "--source", "synthetic"], 2, "is read-only", setup="readonly"),
    Case("database-url-scheme", ["backfill", "--days", "5"], 2, "unsupported database URL scheme",
         env={"DATABASE_URL": "mysql://user@localhost/gex"}, db_arg=False),
    Case("database-url-unreachable", ["backfill", "--days", "5", "--source", "synthetic"], 1, "Connection refused",
         env={"DATABASE_URL": "postgresql://gex:hunter2@127.0.0.1:{port}/gex"}, db_arg=False),
    Case("dotenv-url-scheme", ["backfill", "--days", "5"], 2, "unsupported database URL scheme",
         setup="dotenv", db_arg=False),
    Case("disk-full", ["backfill", "--start", "2024-10-01", "--end", "2024-11-29", "--source", "synthetic"], 1,
         "database or disk is full", env={"GEXHISTORY_SQLITE_MAX_PAGES": "1"}),
    Case("chain-file-unknown-format", ["import-chains", "chain.csv"], 2, "not an option chain file", setup="chain-unknown"),
    Case("chain-file-malformed-row", ["import-chains", "chain.csv"], 2, "chain.csv", setup="chain-bad-row"),
    Case("chain-file-header-only", ["import-chains", "chain.csv"], 2, "no contracts", setup="chain-empty"),
    Case("chain-file-missing", ["import-chains", "nope.csv"], 2, "nope.csv"),
    Case("chain-file-is-database", ["import-chains", DB], 2, DB),
    Case("bars-not-a-number", CSV_RUN, 2, "'abc' is not a number", setup="bars-text-close"),
    Case("bars-incoherent", CSV_RUN, 2, "incoherent bar", setup="bars-incoherent"),
    Case("bars-weekend-date", CSV_RUN, 2, "is not an NYSE session", setup="bars-weekend"),
    Case("bars-duplicate-day", CSV_RUN, 2, "a second row for", setup="bars-duplicate"),
    Case("bars-no-close-column", CSV_RUN, 2, "must name date and close", setup="bars-no-close"),
    Case("bars-file-missing", CSV_RUN, 2, "does not exist"),
    Case("bars-negative-price", CSV_RUN, 2, "line 4: close '-603' must be a price", setup="bars-negative"),
    Case("bars-huge-price", CSV_RUN, 2, "line 4: high '1e308' must be a price", setup="bars-huge"),
    Case("bars-infinite-close", CSV_RUN, 2, "line 4: close 'inf' must be a price", setup="bars-inf"),
    Case("bars-huge-volume", CSV_RUN, 2, "line 4: volume '1e15' must be a number", setup="bars-volume"),
    Case("bars-year-9999", CSV_RUN, 2, "line 4: 9999-12-31 is not an NYSE session", setup="bars-year-9999"),
    Case("bars-start-late", CSV_RUN, 2, "has no row for SPY on 2024-12-02", setup="bars-late"),
    Case("bars-hole", CSV_RUN, 2, "has no row for SPY on 2024-12-04", setup="bars-hole"),
    Case("bars-ends-early", CSV_RUN, 2, "has no row for SPY on 2024-12-04", setup="bars-short"),
    Case("bars-other-symbol", CSV_RUN, 2, "has no rows for SPY", setup="bars-qqq"),
    Case("polygon-without-key", ["backfill", "--days", "5", "--source", "polygon"], 2, "POLYGON_API_KEY"),
    Case("api-key-unsendable", ["backfill", "--days", "5", "--source", "polygon"], 2, "API key",
         env={"POLYGON_API_KEY": "abc\u00e9 def"}),
    Case("massive-base-url-bad", ["backfill", "--days", "5", "--source", "polygon"], 2, "MASSIVE_BASE_URL",
         env={"POLYGON_API_KEY": "pk_test_abcdef", "MASSIVE_BASE_URL": "ftp://example.invalid"}),
    Case("status-missing-db", ["status", "--db", "missing.db"], 2, "does not exist", db_arg=False),
    Case("status-not-sqlite", ["status"], 2, "is not an SQLite database", setup="text"),
    Case("status-corrupt", ["status"], 2, "corrupt", setup="corrupt"),
    Case("status-bad-symbol", ["status", "--symbol", "x;y"], 2, "malformed symbol"),
    Case("script-days-negative", ["--days", "-1"], 2, "--days must be between", script="backfill_historical_data.py"),
    Case("script-json-bad-symbol", ["--json", "--symbol", "BAD SYMBOL"], 2, "malformed symbol",
         script="backfill_historical_data.py"),
]


@pytest.fixture(scope="module")
def valid_db(tmp_path_factory) -> Path:
    """A small real database (two weeks of SPY) to copy into every case's folder."""
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill

    path = tmp_path_factory.mktemp("valid") / DB
    run_backfill(BackfillOptions(["SPY"], dt.date(2024, 12, 2), dt.date(2024, 12, 13), source="synthetic", db=str(path)))
    assert not Path(f"{path}-wal").exists()  # checkpointed: the file alone is the database
    return path


def _prepare(case: Case, folder: Path, valid: Path) -> Path:
    db = folder / DB
    shutil.copy(valid, db)
    if case.setup is None:
        pass
    elif case.setup == "dir":
        (folder / "adir").mkdir()
    elif case.setup == "text":
        db.write_text("symbol,date,close\nSPY,2024-12-02,600\n")
    elif case.setup == "corrupt":  # the header is fine, the pages behind it are garbage
        raw = bytearray(db.read_bytes())
        raw[4096:4096 * 3] = b"\xa5" * (4096 * 2)
        db.write_bytes(bytes(raw))
    elif case.setup == "truncate":
        db.write_bytes(db.read_bytes()[:100])
    elif case.setup == "readonly":
        db.chmod(0o444)
    elif case.setup == "chain-unknown":
        (folder / "chain.csv").write_text("ticker,when,price\nSPY,2024-12-02,600.1\n")
    elif case.setup == "chain-bad-row":
        (folder / "chain.csv").write_text(CHAIN_HEADER + "2024-12-02,SPY,2024-12-20,600,C,1200,0.18\n"
                                          "2024-12-02,SPY,2024-12-20,six hundred,P,900,0.2\n")
    elif case.setup == "chain-empty":
        (folder / "chain.csv").write_text(CHAIN_HEADER)
    elif case.setup.startswith("bars-"):
        good = ["date,open,high,low,close,volume", "2024-12-02,600,603,598,601,1000000",
                "2024-12-03,601,604,599,602,1000000"]
        bad = {"bars-text-close": "2024-12-04,602,605,600,abc,1000000",
               "bars-incoherent": "2024-12-04,602,601,600,604,1000000",
               "bars-weekend": "2024-12-07,602,605,600,603,1000000",
               "bars-duplicate": "2024-12-03,601,604,599,602,1000000",
               "bars-negative": "2024-12-04,602,605,600,-603,1000000",
               "bars-huge": "2024-12-04,602,1e308,600,603,1000000",
               "bars-inf": "2024-12-04,602,605,600,inf,1000000",
               "bars-volume": "2024-12-04,602,605,600,603,1e15",
               "bars-year-9999": "9999-12-31,602,605,600,603,1000000"}
        if case.setup == "bars-no-close":
            good = ["date,open,high,low,price", "2024-12-02,600,603,598,601"]
        # Rows that are each fine but do not cover the window (2024-12-02..06): found before the run is recorded.
        rest = ["2024-12-04,602,605,600,603,1000000", "2024-12-05,603,606,601,604,1000000",
                "2024-12-06,604,607,602,605,1000000"]
        if case.setup == "bars-late":
            good = [good[0], good[2], *rest]
        elif case.setup == "bars-hole":
            good = [*good, *rest[1:]]
        elif case.setup == "bars-qqq":
            good = ["symbol," + good[0], *("QQQ," + r for r in good[1:] + rest)]
        (folder / "bars.csv").write_text("\n".join(good + ([bad[case.setup]] if case.setup in bad else [])) + "\n")
    elif case.setup == "dotenv":
        (folder / ".env").write_text("DATABASE_URL=ftp://example.invalid/gex\n")
    return db


def _files(folder: Path) -> list[str]:
    # SQLite's -wal/-shm companions come and go with any reader, ours included.
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))


def _content(db: Path):
    try:
        return content_digest(str(db))
    except Exception:  # noqa: BLE001 - not a readable database: its bytes are the content
        return None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, valid_db):
    db = _prepare(case, tmp_path, valid_db)
    before_bytes, before_content = file_sha256(db), _content(db)
    before_files = _files(tmp_path)
    env = {k: v.format(port=_closed_port()) for k, v in case.env.items()}
    args = case.args + (["--db", str(db)] if case.db_arg else [])

    out = run_cli(args, tmp_path, env=env, script=case.script)

    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == case.code, out.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert case.needle in lines[0]
    assert "Traceback" not in out.stderr + out.stdout
    assert "hunter2" not in out.stderr + out.stdout  # a password in a URL is never echoed
    assert _files(tmp_path) == before_files
    if case.code == 2:
        assert file_sha256(db) == before_bytes  # not a byte changed
    else:
        assert _content(db) == before_content  # the run log may say it failed; no session was written
        if case.id == "disk-full":
            conn = sqlite3.connect(db)
            statuses = [r[0] for r in conn.execute("SELECT status FROM backfill_runs ORDER BY id")]
            conn.close()
            assert statuses[0] == "ok" and "running" not in statuses[1:]


def test_table_is_big_enough():
    assert len(CASES) >= 25
