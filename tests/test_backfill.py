"""The guide's promises: counts, idempotence, --force, a second symbol, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from gexhistory.calendar import sessions_between
from helpers import rows, run_cli, table_digest

START, END = dt.date(2025, 6, 2), dt.date(2025, 8, 29)  # includes the July 3 early close and July 4


def _backfill(db, **kw):
    opts = BackfillOptions(kw.pop("symbols", ["SPY"]), kw.pop("start", START), kw.pop("end", END),
                           source="synthetic", db=db, **kw)
    return run_backfill(opts)


def test_window_counts_and_calendar(db_url):
    res = _backfill(db_url)
    sessions = sessions_between(START, END)
    assert res.totals()["gex_history"].inserted == 4 * len(sessions)
    assert rows(db_url, "SELECT COUNT(*) FROM gex_history WHERE symbol='SPY'")[0][0] == 4 * len(sessions)
    assert rows(db_url, "SELECT COUNT(*) FROM gamma_history WHERE symbol='SPY'")[0][0] == 4 * len(sessions)
    assert rows(db_url, "SELECT COUNT(*) FROM gamma_daily_summary WHERE symbol='SPY'")[0][0] == len(sessions)
    dates = {dt.date.fromisoformat(d) for (d,) in rows(db_url, "SELECT DISTINCT date FROM gamma_history")}
    assert dates == {s.date for s in sessions}
    assert all(d.weekday() < 5 for d in dates) and dt.date(2025, 7, 4) not in dates
    early = [t for (t,) in rows(db_url, "SELECT time_of_day FROM gamma_history WHERE date='2025-07-03' ORDER BY timestamp")]
    assert early == ["09:30", "11:00", "12:00", "13:00"]
    normal = [t for (t,) in rows(db_url, "SELECT time_of_day FROM gamma_history WHERE date='2025-07-02' ORDER BY timestamp")]
    assert normal == ["09:30", "12:30", "15:00", "16:00"]
    assert {r[0] for r in rows(db_url, "SELECT DISTINCT data_source FROM gex_history")} == {"synthetic"}


def test_rerun_writes_nothing_and_force_replaces(db_url):
    _backfill(db_url)
    before = table_digest(db_url, "gex_history", "SPY")
    again = _backfill(db_url)
    assert all(c.inserted == 0 and c.replaced == 0 for c in again.totals().values())
    assert again.symbols[0].sessions_skipped == len(sessions_between(START, END))
    forced = _backfill(db_url, force=True)
    assert forced.totals()["gex_history"].replaced == len(before)
    assert forced.totals()["gex_history"].inserted == 0
    after = table_digest(db_url, "gex_history", "SPY")
    assert after == before  # same seed, same content; no duplicates
    run_ids = rows(db_url, "SELECT DISTINCT run_id FROM gex_history")
    assert len(run_ids) == 1 and run_ids[0][0] == forced.run_id  # the rows are new


def test_second_symbol_leaves_first_untouched(db_url):
    _backfill(db_url)
    spy = table_digest(db_url, "gamma_daily_summary", "SPY")
    _backfill(db_url, symbols=["QQQ"])
    assert table_digest(db_url, "gamma_daily_summary", "SPY") == spy
    qqq = rows(db_url, "SELECT COUNT(*), AVG(close_price) FROM gamma_daily_summary WHERE symbol='QQQ'")[0]
    assert qqq[0] == len(spy) and abs(qqq[1] - spy[0][14]) > 1  # its own price level


def test_partial_window_is_completed_not_duplicated(db_url):
    _backfill(db_url, start=dt.date(2025, 7, 1), end=dt.date(2025, 7, 31))
    inner = table_digest(db_url, "gex_history", "SPY")
    res = _backfill(db_url)
    n = len(sessions_between(START, END))
    july = len(sessions_between(dt.date(2025, 7, 1), dt.date(2025, 7, 31)))
    assert res.symbols[0].sessions_skipped == july
    assert rows(db_url, "SELECT COUNT(*), COUNT(DISTINCT timestamp) FROM gex_history")[0] == (4 * n, 4 * n)
    # The shorter run computed the same July values as the longer one would have.
    full = [r for r in table_digest(db_url, "gex_history", "SPY") if r[0].startswith("2025-07")]
    assert full == inner


def test_snapshot_tables_agree_and_summary_matches(db_url):
    _backfill(db_url)
    pairs = rows(db_url, """
        SELECT g.net_gex, h.net_gex, g.flip_point, h.flip_point, g.call_wall, h.call_wall, g.put_wall, h.put_wall,
               g.spot_price, g.flip_found, h.distance_to_flip_pct
        FROM gex_history g JOIN gamma_history h ON g.symbol = h.symbol AND g.timestamp = h.timestamp""")
    assert len(pairs) == 4 * len(sessions_between(START, END))
    for ng, nh, fg, fh, cg, ch, pg, ph, spot, found, dist in pairs:
        assert ng == nh and fg == fh and cg == ch and pg == ph
        assert cg is None or cg >= spot
        assert pg is None or pg <= spot
        assert (fg is None) == (not found)
        if fg is not None:
            assert dist == pytest.approx((spot - fg) / spot * 100)
    for (d,) in rows(db_url, "SELECT date FROM gamma_daily_summary"):
        snaps = rows(db_url, "SELECT net_gex, spot_price, flip_point, implied_volatility FROM gamma_history "
                             "WHERE date = :d ORDER BY timestamp", d=d)
        s = rows(db_url, "SELECT open_gex, close_gex, high_gex, low_gex, gex_change, open_price, close_price, "
                         "snapshots_count, avg_iv, open_flip, close_flip FROM gamma_daily_summary WHERE date = :d", d=d)[0]
        gex = [r[0] for r in snaps]
        assert s[:8] == (gex[0], gex[-1], max(gex), min(gex), gex[-1] - gex[0], snaps[0][1], snaps[-1][1], 4)
        assert s[8] == pytest.approx(sum(r[3] for r in snaps) / 4)
        assert (s[9], s[10]) == (snaps[0][2], snaps[-1][2])


def test_regimes_use_one_vocabulary(db_url):
    _backfill(db_url)
    assert {r for (r,) in rows(db_url, "SELECT DISTINCT regime FROM gex_history")} <= {"POSITIVE", "NEGATIVE", "NEUTRAL"}
    for spot, flip, state, net in rows(db_url, "SELECT spot_price, flip_point, mm_state, net_gex FROM gex_history"):
        if flip is not None:
            assert state == ("LONG_GAMMA" if spot >= flip else "SHORT_GAMMA")
        else:
            assert state == ("LONG_GAMMA" if net >= 0 else "SHORT_GAMMA")


def test_guide_commands_as_written(tmp_path):
    """README command 1 and the guide's verification snippet, from a fresh folder."""
    out = run_cli(["--days", "30"], tmp_path, script="backfill_historical_data.py")
    assert out.returncode == 0, out.stderr
    assert "SYNTHETIC DATA" in out.stdout
    conn = sqlite3.connect(tmp_path / "gex_copilot.db")
    n_sessions = conn.execute("SELECT COUNT(*) FROM gamma_daily_summary WHERE symbol='SPY'").fetchone()[0]
    assert 18 <= n_sessions <= 23
    assert conn.execute("SELECT COUNT(*) FROM gex_history WHERE symbol='SPY'").fetchone()[0] == 4 * n_sessions
    assert conn.execute("SELECT COUNT(*) FROM regime_signals").fetchone()[0] >= 0
    conn.close()
    again = run_cli(["--days", "30"], tmp_path, script="backfill_historical_data.py")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    forced = run_cli(["--days", "30", "--force", "--quiet"], tmp_path, script="backfill_historical_data.py")
    assert forced.returncode == 0 and forced.stdout.count("\n") == 1  # --quiet: one summary line
    assert f"of {n_sessions} sessions written" in forced.stdout and "SYNTHETIC DATA" in forced.stdout
    qqq = run_cli(["--symbol", "QQQ", "--days", "30", "--json"], tmp_path, script="backfill_historical_data.py")
    assert qqq.returncode == 0
    import json

    summary = json.loads(qqq.stdout)
    assert summary["symbols"][0]["symbol"] == "QQQ" and summary["synthetic"] is True
    assert summary["totals"]["gex_history"]["inserted"] == 4 * n_sessions
    init = run_cli([], tmp_path, script=None)  # `python -m gexhistory` with no command prints help
    assert init.returncode in (0, 2)
    shim = run_cli(["-c", "from config_and_database import init_database; init_database()"], tmp_path)
    del shim  # `-c` is not a gexhistory option; the real shim call is below
    import os
    import subprocess
    import sys

    from helpers import REPO

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    env.pop("DATABASE_URL", None)
    env.pop("DATABASE_PATH", None)
    r = subprocess.run([sys.executable, "-c", "from config_and_database import init_database; init_database()"],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--days", "-5"], "--days must be between"),
    (["--days", "abc"], "not a valid integer"),
    (["--symbol", "SPY;DROP"], "malformed symbol"),
    (["--db", "/nonexistent-folder/x.db"], "does not exist"),
    (["--start", "2025-03-01", "--end", "2025-01-01"], "before --start"),
    (["--source", "bogus"], "unknown source"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, needle):
    out = run_cli(["backfill", *args], tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not (tmp_path / "gex_copilot.db").exists()


def test_status_reports_counts_and_gaps(tmp_path):
    db = str(tmp_path / "g.db")
    _backfill(db)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM gamma_daily_summary WHERE date='2025-07-07'")
    conn.commit()
    conn.close()
    out = run_cli(["status", "--db", db], tmp_path, env={"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    n = len(sessions_between(START, END))
    assert f"{4 * n:,}" in out.stdout and "2025-06-02" in out.stdout and "2025-08-29" in out.stdout
    # The same line `status --check` prints for it (one source of truth: store/status.py).
    assert "gap: 1 session between 2025-06-02 and 2025-08-29 has no daily summary: 2025-07-07" in out.stdout


def test_noop_rerun_records_its_run_and_counts(db_url):
    import json

    first = _backfill(db_url)
    again = _backfill(db_url)
    n = len(sessions_between(START, END))
    totals = again.as_dict()["totals"]
    assert totals["gex_history"] == {"inserted": 0, "skipped": 4 * n, "replaced": 0}
    assert totals["gamma_daily_summary"] == {"inserted": 0, "skipped": n, "replaced": 0}
    runs = rows(db_url, "SELECT id, status, counts, parameters, start_date, end_date, data_source, finished_at "
                        "FROM backfill_runs ORDER BY id")
    assert [r[0] for r in runs] == [first.run_id, again.run_id]
    (_, status, counts, params, start, end, source, finished) = runs[1]
    assert status == "ok" and finished is not None and json.loads(counts) == totals
    assert params == runs[0][3] and (start, end, source) == (START.isoformat(), END.isoformat(), "synthetic")
