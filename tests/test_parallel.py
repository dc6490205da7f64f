"""The executor behind --jobs and --cluster: workers never outlive their parent, and a Dask cluster
stores exactly what one local process stores.

- Killing the parent of a `--jobs 2` run (SIGKILL: no clean-up at all; SIGTERM: a clean end) leaves
  no process behind within 2 s: workers are ended by the kernel (PR_SET_PDEATHSIG) or by the parent.
- A real `distributed.LocalCluster` of two worker processes runs the per-symbol tasks, writing to
  PostgreSQL: the content equals a `--jobs 1` run's, to the last bit; SQLite with a cluster is bad input.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dbcheck import content_digest
from helpers import REPO, rows, run_cli

SYMBOLS = "SPY,QQQ,IWM"
START, END = dt.date(2025, 6, 2), dt.date(2025, 7, 31)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    return env


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process, from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        out[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return out


def _living_in_group(pgid: int) -> list[int]:
    return [pid for pid, (_, group, state) in _processes().items() if group == pgid and state not in ("Z", "X")]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_parent_of_a_jobs_run_leaves_no_process(tmp_path, sig):
    db = str(tmp_path / "g.db")
    cmd = [sys.executable, "-m", "gexhistory", "backfill", "--symbols", SYMBOLS, "--days", "3650", "--jobs", "2",
           "--source", "synthetic", "--quiet", "--db", db]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # its own group: ours to search
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = [pid for pid, (ppid, _, _) in _processes().items() if ppid == proc.pid]
        time.sleep(0.05)
    assert len(workers) >= 2, f"the run never started two workers: {proc.stderr.read() if proc.poll() else ''}"
    time.sleep(0.3)  # inside their work, holding connections
    os.kill(proc.pid, sig)
    killed_at = time.monotonic()
    proc.wait(timeout=10)
    while _living_in_group(proc.pid) and time.monotonic() - killed_at < 2.0:
        time.sleep(0.05)
    assert _living_in_group(proc.pid) == [], "processes outlived their parent by 2 s"
    if sig == signal.SIGTERM:  # a clean end: one line, 128 + 15, the run recorded as interrupted
        assert proc.returncode == 143
        assert proc.stderr.read().strip() == "error: terminated"
        assert rows(db, "SELECT status FROM backfill_runs")[-1][0] == "interrupted"
    # Whole sessions only, and a rerun completes the window.
    rerun = run_cli(["backfill", "--symbols", SYMBOLS, "--days", "3650", "--jobs", "2", "--source", "synthetic",
                     "--quiet", "--db", db], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    per_symbol = rows(db, "SELECT symbol, COUNT(*), SUM(snapshots_count) FROM gamma_daily_summary GROUP BY symbol")
    snaps = dict(rows(db, "SELECT symbol, COUNT(*) FROM gex_history GROUP BY symbol"))
    assert len(per_symbol) == 3 and all(snaps[s] == total for s, _, total in per_symbol)


@pytest.mark.postgres
def test_a_dask_cluster_stores_what_one_process_stores(pg_database_url, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from conftest import _reset_pg

    args = ["backfill", "--symbols", SYMBOLS, "--start", START.isoformat(), "--end", END.isoformat(),
            "--source", "synthetic", "--json"]
    serial = str(tmp_path / "serial.db")
    assert run_cli([*args, "--db", serial], tmp_path).returncode == 0
    _reset_pg(pg_database_url)
    # The cluster's worker processes import gexhistory from this checkout, as a deployed node would
    # from its installed package.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "src"), str(REPO)]))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        out = run_cli([*args, "--cluster", cluster.scheduler_address, "--db", pg_database_url], tmp_path)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert summary["failed"] == [] and summary["totals"]["gamma_daily_summary"]["inserted"] == 3 * len(
            rows(serial, "SELECT DISTINCT date FROM gamma_daily_summary"))
        assert content_digest(pg_database_url) == content_digest(serial)
        again = run_cli([*args, "--cluster", cluster.scheduler_address, "--db", pg_database_url], tmp_path)
        assert json.loads(again.stdout)["totals"]["gex_history"]["inserted"] == 0


def test_a_cluster_with_sqlite_is_bad_input(tmp_path):
    out = run_cli(["backfill", "--days", "7", "--source", "synthetic", "--cluster", "tcp://127.0.0.1:1"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: a Dask cluster writes through PostgreSQL")
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "gex_copilot.db").exists()


@pytest.mark.postgres
def test_an_unreachable_scheduler_is_one_line_and_exit_1(pg_database_url, tmp_path):
    pytest.importorskip("distributed")
    out = run_cli(["backfill", "--days", "7", "--source", "synthetic", "--cluster", "tcp://127.0.0.1:9",
                   "--db", pg_database_url], tmp_path, env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def _chain_files(tmp_path) -> list[str]:
    """Three generic chain files of SPY, one session each, the chain shifted a little day by day."""
    from test_chain_import import EXPIRIES, _big_chain, _generic_file

    days = [dt.date(2025, 6, 2), dt.date(2025, 6, 3), dt.date(2025, 6, 4)]
    out = []
    for j, day in enumerate(days):
        contracts = [(e, k, r, oi + 37 * j, iv) for e, k, r, oi, iv in _big_chain() if e > day and e >= EXPIRIES[0]]
        out.append(_generic_file(tmp_path / f"chain_{day}.csv", contracts, spot=600.0 + j, day=day))
    return out


def test_chain_files_read_by_workers_import_what_one_process_imports(db_url, tmp_path):
    files = _chain_files(tmp_path)
    serial = str(tmp_path / "serial.db")
    assert run_cli(["import-chains", *files, "--db", serial], tmp_path).returncode == 0
    out = run_cli(["import-chains", *files, "--jobs", "2", "--json", "--db", db_url], tmp_path)
    assert out.returncode == 0, out.stderr
    assert [s["date"] for s in json.loads(out.stdout)["sessions"]] == ["2025-06-02", "2025-06-03", "2025-06-04"]
    assert content_digest(db_url) == content_digest(serial)


def test_the_first_bad_file_in_order_is_reported_by_workers_too(tmp_path):
    good = _chain_files(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("date,underlying,expiration,strike,right,oi,iv\n2025-06-03,SPY,2025-06-13,abc,P,10,0.2\n")
    out = run_cli(["import-chains", good[0], str(bad), good[1], "--jobs", "3"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: {bad}:2: strike 'abc' is not a number"]
    assert not (tmp_path / "gex_copilot.db").exists()


@pytest.mark.postgres
@pytest.mark.parametrize("hold", [None, "0"], ids=["held", "spilled"])
def test_chain_files_read_on_a_dask_cluster(pg_database_url, tmp_path, monkeypatch, hold):
    distributed = pytest.importorskip("distributed")
    from conftest import _reset_pg

    files = _chain_files(tmp_path)
    serial = str(tmp_path / "serial.db")
    assert run_cli(["import-chains", *files, "--db", serial], tmp_path).returncode == 0
    _reset_pg(pg_database_url)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "src"), str(REPO)]))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        out = run_cli(["import-chains", *files, "--cluster", cluster.scheduler_address, "--db", pg_database_url],
                      tmp_path, env={"GEXHISTORY_IMPORT_HOLD_CONTRACTS": hold} if hold else None)
    assert out.returncode == 0, out.stderr
    assert content_digest(pg_database_url) == content_digest(serial)
