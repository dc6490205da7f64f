"""Signal outcomes always agree with the stored closes (issue 18, data correctness).

A signal's outcome is computed from the closes of the ten sessions after it; a `--force` run that
replaces those sessions (another window, another seed, another run at the same time) must leave
outcomes that agree with what it stored. `status --check` reports any that do not (`stale_outcome`),
and every backfill recomputes them. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from dbcheck import content_digest, session_problems
from helpers import REPO, engine_for, rows, run_cli

from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from gexhistory.store import status as st
from gexhistory.store.db import open_engine

BASE = ("2024-03-01", "2024-07-31")
A = ("2024-04-01", "2024-06-28")
B = ("2024-05-01", "2024-07-31")


def _opts(db: str, window: tuple[str, str], seed: int = 42, force: bool = False) -> BackfillOptions:
    start, end = (dt.date.fromisoformat(d) for d in window)
    return BackfillOptions(["SPY"], start, end, source="synthetic", db=db, seed=seed, force=force)


def _stale(db: str) -> list[str]:
    eng = open_engine(db, must_exist=True, write=False)
    try:
        return [p.message for p in st.check_symbol(eng, "SPY", dt.date(2024, 12, 31)) if p.kind == "stale_outcome"]
    finally:
        eng.dispose()


def _exec(db: str, sql: str, **params) -> None:
    from sqlalchemy import text

    eng = engine_for(db)
    with eng.begin() as conn:
        conn.execute(text(sql), params)
    eng.dispose()


# (what is corrupted, SQL applied to the signal at :ts, the column the message names)
CORRUPTIONS = [
    ("1-session change", "UPDATE regime_signals SET price_change_1d = price_change_1d + 0.5 WHERE timestamp = :ts",
     "price_change_1d"),
    ("5-session change", "UPDATE regime_signals SET price_change_5d = -price_change_5d - 1 WHERE timestamp = :ts",
     "price_change_5d"),
    ("10-session change nulled", "UPDATE regime_signals SET price_change_10d = NULL WHERE timestamp = :ts",
     "price_change_10d"),
    ("verdict flipped", "UPDATE regime_signals SET signal_correct = 1 - signal_correct WHERE timestamp = :ts",
     "signal_correct"),
    ("a later close replaced", ("UPDATE gamma_daily_summary SET close_price = close_price * 1.1 "
                                "WHERE date = (SELECT MIN(date) FROM gamma_daily_summary WHERE date > substr(:ts, 1, 10))"),
     "price_change_1d"),
]


@pytest.mark.parametrize("what, sql, column", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_hand_corrupted_outcome_is_reported_and_a_rerun_repairs_it(db_url, tmp_path, what, sql, column):
    run_backfill(_opts(db_url, A))
    assert _stale(db_url) == []
    # A signal whose every horizon is stored, with no other signal in the 16 calendar days before it
    # (the first one qualifies), so that the close after it is in no other signal's 10-session horizon:
    # replacing that close makes exactly this one signal stale.
    stamps = [t for (t,) in rows(db_url, "SELECT timestamp FROM regime_signals ORDER BY timestamp")]
    with_10d = {t for (t,) in rows(db_url, "SELECT timestamp FROM regime_signals WHERE price_change_10d IS NOT NULL")}
    day = [dt.date.fromisoformat(str(t)[:10]) for t in stamps]
    ts = next(t for k, t in enumerate(stamps) if t in with_10d
              and (k == 0 or (day[k] - day[k - 1]).days > 16))
    _exec(db_url, sql, ts=ts)
    found = _stale(db_url)
    assert len(found) == 1 and found[0].startswith("1 signal whose outcome disagrees"), found
    assert ts in found[0] and f"{column}=" in found[0]
    out = run_cli(["status", "--check", "--db", db_url], tmp_path)
    assert out.returncode == 1 and out.stdout.startswith("SPY: stale_outcome: "), out.stdout + out.stderr
    # A rerun with nothing to compute still settles the outcomes from the stored closes.
    result = run_backfill(_opts(db_url, A))
    assert result.symbols[0].sessions_written == 0
    assert _stale(db_url) == []


def test_a_gap_is_not_a_stale_outcome(db_url):
    run_backfill(_opts(db_url, A))
    _exec(db_url, "DELETE FROM gamma_daily_summary WHERE symbol='SPY' AND date='2024-05-15'")
    assert _stale(db_url) == []  # the missing session is the `gap` kind's to report


def test_force_with_other_closes_recomputes_the_outcomes_before_its_window(db_url):
    """Sequential: a --force of a later window at other prices (another seed) changes the closes the
    signals just before it were settled on; they are recomputed, not left with the old closes."""
    run_backfill(_opts(db_url, BASE))
    before = rows(db_url, "SELECT timestamp, price_change_10d FROM regime_signals WHERE timestamp < '2024-05-01' "
                          "ORDER BY timestamp")
    run_backfill(_opts(db_url, B, seed=7, force=True))
    after = dict(rows(db_url, "SELECT timestamp, price_change_10d FROM regime_signals WHERE timestamp < '2024-05-01'"))
    assert _stale(db_url) == []
    assert any(after[ts] != v for ts, v in before), "the seed-7 closes must move some earlier outcome"


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABASE_URL", "DATABASE_PATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    env["GEXHISTORY_BATCH_SESSIONS"] = "3"  # many commits, so the two runs interleave
    return env


def _together(db: str, cwd, *runs: tuple[tuple[str, str], int]) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "gexhistory", "backfill", "--start", w[0], "--end", w[1],
                               "--source", "synthetic", "--seed", str(seed), "--force", "--quiet", "--db", db],
                              cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w, seed in runs]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The content of the base window then A then B, one after the other (SQLite: content_digest reads
    both backends alike)."""
    db = str(tmp_path_factory.mktemp("outcomes_seq") / "seq.db")
    for window, force in ((BASE, False), (A, True), (B, True)):
        run_backfill(_opts(db, window, force=force))
    return content_digest(db)


def test_overlapping_force_runs_started_together_equal_sequential_runs(db_url, tmp_path, sequential):
    run_backfill(_opts(db_url, BASE))
    _together(db_url, tmp_path, (A, 42), (B, 42))
    assert session_problems(db_url) == []
    assert _stale(db_url) == []
    assert content_digest(db_url) == sequential


def test_overlapping_force_runs_at_other_prices_leave_no_stale_outcome(db_url, tmp_path):
    """Two seeds: which run's prices each overlapping session ends with depends on the interleaving,
    but the outcomes must agree with whichever closes were stored."""
    run_backfill(_opts(db_url, BASE))
    _together(db_url, tmp_path, (A, 7), (B, 11))
    assert session_problems(db_url) == []
    assert _stale(db_url) == []
