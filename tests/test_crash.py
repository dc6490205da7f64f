"""kill -9 at any moment leaves a consistent database, and a rerun completes it to exactly the content
of an uninterrupted run (SPEC §8), on SQLite and PostgreSQL.

One database per backend takes MIN_KILLS consecutive SIGKILLs of a real `python -m gexhistory backfill`
process over a two-year window: kill, check, resume and kill again, then one run to the
end. Kill points are spread over the whole run by progress (the k-th kill around its k/(MIN_KILLS+2)
fraction) with a seeded offset inside the batch, plus seeded kills during start-up (schema creation,
the run-log insert, the first computation). Small batches (GEXHISTORY_BATCH_SESSIONS) give many
commit points to land between and inside.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from dbcheck import content_digest, runs, session_problems, sqlite_integrity
from helpers import REPO, rows

ARGS = ["backfill", "--symbol", "SPY", "--start", "2022-01-03", "--end", "2023-12-29", "--source", "synthetic"]
SESSIONS = 501  # NYSE sessions in 2022-2023
BATCH = 5
MIN_KILLS = 20  # kills that must land before a run ends on its own
ATTEMPTS = 30  # at most: a start-up kill late in the sequence may find a short resumed run already done
PROGRESS = re.compile(r"^(\S+): (\d+)/(\d+) sessions written")


def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    env.update(extra or {})
    return env


def _spawn(db: str, cwd, batch: int | None = BATCH) -> subprocess.Popen:
    env = _env({"GEXHISTORY_BATCH_SESSIONS": str(batch)} if batch else None)
    return subprocess.Popen([sys.executable, "-m", "gexhistory", *ARGS, "--db", db], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run with the default batch size: the content every killed-and-resumed run must reach."""
    where = tmp_path_factory.mktemp("reference")
    db = str(where / "reference.db")
    t0 = time.perf_counter()
    proc = _spawn(db, where, batch=None)
    start_up, err = None, []
    for line in proc.stderr:
        err.append(line)
        if start_up is None and PROGRESS.match(line):
            start_up = time.perf_counter() - t0
    proc.wait(timeout=600)
    assert proc.returncode == 0, "".join(err)
    seconds = time.perf_counter() - t0
    digest, counts = content_digest(db)
    assert counts["gamma_daily_summary"] == SESSIONS and counts["gex_history"] == 4 * SESSIONS
    return digest, counts, seconds / SESSIONS, start_up


def _kill_somewhere(proc: subprocess.Popen, rng: random.Random, needed: int, per_session: float,
                    start_up: float) -> str | None:
    """SIGKILL `proc` once it has written `needed` sessions (plus a seeded offset into the next batch),
    or at a seeded moment of its start-up (up to its first commit in the reference run) when `needed`
    is 0. Returns where, or None if it ended first."""
    if needed <= 0:
        delay = rng.uniform(0.0, start_up)
        try:
            proc.wait(timeout=delay)
            return None
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            return f"start-up +{delay:.2f}s"
    latest: dict[str, int] = {}
    for line in proc.stderr:
        m = PROGRESS.match(line)
        if m:
            latest[m.group(1)] = int(m.group(2))
        if sum(latest.values()) >= needed:
            delay = rng.choice([0.0, rng.uniform(0.0, 1.2 * BATCH * per_session)])
            try:
                proc.wait(timeout=delay) if delay else None
                if proc.poll() is not None:
                    return None
            except subprocess.TimeoutExpired:
                pass
            proc.send_signal(signal.SIGKILL)
            return f"after {sum(latest.values())} sessions +{delay:.2f}s"
    return None  # stderr closed: the run ended before the kill point


def _done(db: str) -> int:
    try:
        return rows(db, "SELECT COUNT(*) FROM gamma_daily_summary")[0][0]
    except Exception:  # noqa: BLE001 - no table yet: killed before the schema existed
        return 0


def test_resumed_window_is_bit_identical(tmp_path):
    """The premise of the kill test: a window finished in two runs equals one run, to the last bit
    (rolling statistics must not carry rounding from wherever a run's bars happened to start)."""
    from dbcheck import content_digest as digest_of
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill

    def run(db, start, end):
        run_backfill(BackfillOptions(["SPY"], dt.date.fromisoformat(start), dt.date.fromisoformat(end),
                                     source="synthetic", db=db, batch_sessions=7))

    one, two = str(tmp_path / "one.db"), str(tmp_path / "two.db")
    run(one, "2023-01-03", "2023-06-30")
    run(two, "2023-01-03", "2023-03-15")
    run(two, "2023-01-03", "2023-06-30")
    assert digest_of(one) == digest_of(two)


def test_stale_running_rows_are_marked_interrupted_by_the_next_run(db_url):
    """Only rows of this host whose process is gone: a live process or another host may really be running."""
    import socket

    from sqlalchemy import insert

    from gexhistory.store import writes
    from gexhistory.store.db import init_schema, open_engine
    from gexhistory.store.schema import backfill_runs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    engine = open_engine(db_url)
    init_schema(engine)
    base = {"command": "backfill", "symbols": "SPY", "started_at": "2025-01-02 09:30:00", "status": "running"}
    with engine.begin() as conn:
        for pid, where in ((dead.pid, host), (os.getppid(), host), (dead.pid, "another-host")):
            conn.execute(insert(backfill_runs).values(**base, pid=pid, host=where))
    new_id = writes.start_run(engine, "backfill", ["SPY"], None, None, "synthetic", {}, {}, "2025-01-03 09:30:00")
    engine.dispose()
    got = runs(db_url)
    assert [r[1] for r in got] == ["interrupted", "running", "running", "running"]
    assert got[-1][0] == new_id and got[-1][2] == os.getpid()
    assert "killed" in got[0][3]


@pytest.mark.slow
def test_sigkill_at_many_points_then_rerun_matches_uninterrupted(db_url, tmp_path, reference):
    ref_digest, ref_counts, per_session, start_up = reference
    rng = random.Random(20240607)
    is_sqlite = "://" not in db_url
    kills, killed_pids, log = 0, [], []
    for k in range(ATTEMPTS):
        if kills == MIN_KILLS:
            break
        before = _done(db_url)
        target = round(SESSIONS * (kills + 1) / (MIN_KILLS + 2))  # spread over the run, the last well before its end
        needed = 0 if (k == 0 or rng.random() < 0.2) else max(1, target - before)
        proc = _spawn(db_url, tmp_path)
        where = _kill_somewhere(proc, rng, needed, per_session, start_up)
        proc.wait(timeout=120)
        proc.stderr.close()
        if where is None:
            assert proc.returncode == 0
            continue
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        killed_pids.append(proc.pid)
        log.append(where)

        if is_sqlite and os.path.exists(db_url):
            assert sqlite_integrity(db_url) == [], where
        assert session_problems(db_url) == [], where
        running = [r for r in runs(db_url) if r[1] == "running"]
        assert {r[2] for r in running} <= set(killed_pids), (where, running)
        assert _done(db_url) >= before  # a kill never undoes committed sessions

    assert kills >= MIN_KILLS, log
    final = _spawn(db_url, tmp_path)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert session_problems(db_url) == []
    digest, counts = content_digest(db_url)
    assert counts == ref_counts
    assert digest == ref_digest  # byte-identical canonical dump of every content table

    log_rows = runs(db_url)
    assert log_rows[-1][1] == "ok" and log_rows[-1][2] == final.pid
    assert not [r for r in log_rows if r[1] == "running"]
    for _id, status, pid, message in log_rows[:-1]:
        if pid in killed_pids:
            assert status == "interrupted" and "killed" in message
        else:  # ran to the end before its kill point
            assert status == "ok"
    print(f"\n{kills} kills survived on {'sqlite' if is_sqlite else 'postgresql'}; "
          f"{sum(counts.values())} rows compared; kill points: {'; '.join(log)}")


def test_ctrl_c_ends_a_two_process_run_cleanly(db_url, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during a run computed in two
    processes: one line, exit 130, whole sessions only, the run recorded as interrupted, no process
    left behind, and a rerun completes the window."""
    env = _env({"GEXHISTORY_BATCH_SESSIONS": "50", "GEXHISTORY_PROCESSES": "2"})
    args = ["backfill", "--symbol", "SPY", "--start", "2016-01-04", "--end", "2025-12-31", "--source", "synthetic"]
    proc = subprocess.Popen([sys.executable, "-m", "gexhistory", *args, "--db", db_url], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    err = []
    for line in proc.stderr:
        err.append(line)
        if PROGRESS.match(line):
            os.killpg(proc.pid, signal.SIGINT)
            break
    err += proc.stderr.readlines()
    proc.wait(timeout=60)
    assert proc.returncode == 130, "".join(err)
    assert [x for x in err if not PROGRESS.match(x) and x.strip()] == ["error: interrupted\n"]
    deadline = time.monotonic() + 10
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_alive(proc.pid)  # the forked worker ended with its parent
    assert session_problems(db_url) == []
    written = _done(db_url)
    assert 0 < written < 2514
    assert [r[1] for r in runs(db_url)] == ["interrupted"]

    rerun = subprocess.run([sys.executable, "-m", "gexhistory", *args, "--db", db_url], cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert _done(db_url) == 2514 and session_problems(db_url) == []


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
