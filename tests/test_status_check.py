"""`status --check`: a clean backfill passes; each injected problem is found, one line each, exit 1."""

from __future__ import annotations

import datetime as dt

import numpy as np

from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from gexhistory.store import status as st
from gexhistory.store.db import open_engine
from helpers import engine_for, rows, run_cli

START, END = dt.date(2025, 6, 2), dt.date(2025, 7, 31)


def _exec(db: str, sql: str, **params) -> None:
    from sqlalchemy import text

    eng = engine_for(db)
    with eng.begin() as conn:
        conn.execute(text(sql), params)
    eng.dispose()


def _kinds(db: str) -> dict[str, list[str]]:
    eng = open_engine(db, must_exist=True, write=False)
    found: dict[str, list[str]] = {}
    for p in st.check_symbol(eng, "SPY", END):
        found.setdefault(p.kind, []).append(p.message)
    eng.dispose()
    return found


def test_clean_backfill_passes_and_each_injected_problem_is_found(db_url, tmp_path):
    run_backfill(BackfillOptions(["SPY", "QQQ"], START, END, source="synthetic", db=db_url))
    out = run_cli(["status", "--check", "--db", db_url], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "ok: no problems found in 2 symbols"

    # 1. A session whose daily summary is gone: a gap against the calendar.
    _exec(db_url, "DELETE FROM gamma_daily_summary WHERE symbol='SPY' AND date='2025-07-07'")
    found = _kinds(db_url)
    assert list(found) == ["gap"] and "1 session between" in found["gap"][0] and "2025-07-07" in found["gap"][0]

    # 2. One snapshot of a session deleted: fewer than four snapshots.
    _exec(db_url, "DELETE FROM gex_history WHERE symbol='SPY' AND timestamp='2025-06-10 12:30:00'")
    found = _kinds(db_url)
    assert sorted(found) == ["gap", "short_session"]
    assert "in gex_history: 2025-06-10" in found["short_session"][0]

    # 3. A column nulled: NULL-heavy.
    _exec(db_url, "UPDATE gamma_history SET implied_volatility = NULL WHERE symbol='SPY' AND date >= '2025-07-01'")
    found = _kinds(db_url)
    assert "gamma_history.implied_volatility is NULL in" in found["null_heavy"][0] and len(found["null_heavy"]) == 1

    # 4. A huge net GEX: an outlier on the symbol's own history.
    (median,) = rows(db_url, "SELECT net_gex FROM gex_history WHERE symbol='SPY' AND timestamp='2025-06-17 15:00:00'")[0]
    _exec(db_url, "UPDATE gex_history SET net_gex = :v WHERE symbol='SPY' AND timestamp='2025-06-17 15:00:00'",
          v=abs(median) * 1e4 + 1e12)
    found = _kinds(db_url)
    assert "1 snapshot with" in found["outlier"][0] and "2025-06-17 15:00:00" in found["outlier"][0]

    # 5. Real rows with one synthetic row among them.
    _exec(db_url, "UPDATE gex_history SET data_source='polygon' WHERE symbol='SPY' AND timestamp <> '2025-06-03 09:30:00'")
    found = _kinds(db_url)
    assert sorted(found) == ["gap", "mixed_sources", "null_heavy", "outlier", "short_session"]
    assert found["mixed_sources"][0].startswith("1 synthetic snapshot mixed with real ones from polygon")

    out = run_cli(["status", "--check", "--db", db_url], tmp_path)
    assert out.returncode == 1
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.startswith("SPY: ") for line in lines)  # QQQ is still clean
    assert "5 problems found in 2 symbols" in out.stderr


def test_robust_z_flags_only_the_planted_value():
    rng = np.random.default_rng(0)  # test data only
    x = rng.standard_t(5, 2000) * 1e9
    assert np.abs(st.robust_z(x)).max() < st.OUTLIER_Z_LIMIT
    x[123] = 1e12
    far = np.flatnonzero(np.abs(st.robust_z(x)) > st.OUTLIER_Z_LIMIT)
    assert far.tolist() == [123]


def test_check_on_missing_database_is_bad_input(tmp_path):
    out = run_cli(["status", "--check", "--db", str(tmp_path / "none.db")], tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("error: ")
