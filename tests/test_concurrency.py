"""Two backfills at once (SPEC §8): same symbol and window, different symbols, both with --force, on a
fresh SQLite file (WAL, busy timeout) and a fresh PostgreSQL database. Both finish with exit 0, no
duplicates, no lost rows, nothing reported twice, and the content equals one run's, bit for bit.

Both processes also create the schema at the same moment, which PostgreSQL only survives because
init_schema queues on an advisory lock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from dbcheck import content_digest, runs, session_problems
from helpers import REPO

START, END = "2024-04-01", "2024-06-28"
N = 63  # NYSE sessions in the window


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    env["GEXHISTORY_BATCH_SESSIONS"] = "3"  # many commits, so the two runs interleave
    return env


def _together(db: str, cwd, *extra_args: list[str]) -> list[tuple[int, dict | str]]:
    procs = [subprocess.Popen([sys.executable, "-m", "gexhistory", "backfill", "--start", START, "--end", END,
                               "--source", "synthetic", "--json", "--db", db, *args],
                              cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in extra_args]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append((p.returncode, json.loads(stdout) if p.returncode == 0 else stderr))
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Content digests of single sequential runs: SPY alone, and SPY then QQQ."""
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill

    where = tmp_path_factory.mktemp("concurrency_ref")
    out = {}
    for name, symbols in (("SPY", ["SPY"]), ("SPY,QQQ", ["SPY", "QQQ"])):
        db = str(where / f"{name.replace(',', '_')}.db")
        run_backfill(BackfillOptions(symbols, dt.date.fromisoformat(START), dt.date.fromisoformat(END),
                                     source="synthetic", db=db))
        out[name] = content_digest(db)
    return out


def _check(db_url, results, ref):
    for code, payload in results:
        assert code == 0, payload
    assert session_problems(db_url) == []
    assert content_digest(db_url) == ref
    assert [r[1] for r in runs(db_url)] == ["ok", "ok"]


def test_same_symbol_same_window(db_url, tmp_path, reference):
    results = _together(db_url, tmp_path, ["--symbol", "SPY"], ["--symbol", "SPY"])
    _check(db_url, results, reference["SPY"])
    # Each session was written by exactly one of them; the other saw it done (none replaced).
    tables = [r[1]["totals"] for r in results]
    assert sum(t["gamma_daily_summary"]["inserted"] for t in tables) == N
    assert sum(t["gex_history"]["inserted"] for t in tables) == 4 * N
    assert sum(t["gex_history"]["replaced"] for t in tables) == 0
    assert sum(t["gamma_daily_summary"]["skipped"] for t in tables) == N


def test_different_symbols(db_url, tmp_path, reference):
    results = _together(db_url, tmp_path, ["--symbol", "SPY"], ["--symbol", "QQQ"])
    _check(db_url, results, reference["SPY,QQQ"])
    for _, summary in results:
        assert summary["totals"]["gex_history"] == {"inserted": 4 * N, "skipped": 0, "replaced": 0}


def test_same_symbol_both_forced(db_url, tmp_path, reference):
    results = _together(db_url, tmp_path, ["--symbol", "SPY", "--force"], ["--symbol", "SPY", "--force"])
    _check(db_url, results, reference["SPY"])
