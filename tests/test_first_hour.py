"""A user's first hour, through the CLI as they type it: the default window in --help, a mistyped symbol
refused with a hint, a new symbol named before the work, --quiet's one line, counts that agree with
their nouns, and a health check that reports a symbol with no rows."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from gexhistory.calendar import last_completed_session, sessions_between
from helpers import rows, run_cli


def _sessions(days: int) -> int:
    last = last_completed_session().date
    return len(sessions_between(last - dt.timedelta(days=days - 1), last))


def test_backfill_help_gives_the_default_window(tmp_path):
    out = run_cli(["backfill", "--help"], tmp_path)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "(default: 365, when --start is not given)" in text
    assert "one summary line" in text  # --quiet says what it keeps


def test_a_name_that_cannot_be_a_ticker_is_refused_with_a_hint(tmp_path):
    db = tmp_path / "gex_copilot.db"
    out = run_cli(["backfill", "--symbol", "spyy1", "--days", "10"], tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "error: SPYY1 does not look like a listed ticker (1-5 letters, optionally a class suffix such as BRK.B; "
        "indices as I:SPX); the synthetic market would invent prices for it: did you mean SPY?"]
    assert not db.exists()  # refused before the database is created

    assert run_cli(["backfill", "--symbol", "XLE", "--days", "10", "--quiet"], tmp_path).returncode == 0
    before = db.read_bytes()
    out = run_cli(["backfill", "--symbols", "XLE,XLE1", "--days", "10"], tmp_path)
    assert out.returncode == 2 and "XLE1 does not look like a listed ticker" in out.stderr
    assert "did you mean XLE?" in out.stderr  # the stored symbol is the hint
    assert db.read_bytes() == before  # nothing written, not even a run record
    # Share classes and indices are tickers.
    for name in ("BRK.B", "BF-B", "I:SPX"):
        ok = run_cli(["backfill", "--symbol", name, "--days", "3", "--quiet", "--db", str(tmp_path / "c.db")], tmp_path)
        assert ok.returncode == 0, ok.stderr


def test_a_new_symbol_is_named_before_the_work(tmp_path):
    db = str(tmp_path / "g.db")
    assert run_cli(["backfill", "--symbol", "QQQ", "--days", "10", "--quiet", "--db", db], tmp_path).returncode == 0
    # stderr into stdout: the progress lines (stderr) and the notices (stdout) in the order they were written.
    out = run_cli(["backfill", "--symbols", "QQQ,QQQQ", "--days", "10", "--db", db], tmp_path, merge=True)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    banner = lines.index("SYNTHETIC DATA: prices come from the seeded synthetic market, not a real feed; every "
                         "row is labelled data_source='synthetic'.")
    notice = lines.index("QQQQ: new symbol, synthetic prices (did you mean QQQ?)")
    work = next(i for i, line in enumerate(lines) if re.match(r"QQQQ: \d+/\d+ sessions written", line))
    assert banner < notice < work  # both before the first session is written
    assert not any(line.startswith("QQQ: new symbol") for line in lines)  # QQQ was stored already
    again = run_cli(["backfill", "--symbols", "QQQ,QQQQ", "--days", "10", "--db", db, "--json"], tmp_path)
    assert json.loads(again.stdout)["new_symbols"] == []
    assert "new symbol" not in again.stdout + again.stderr
    fresh = run_cli(["backfill", "--symbol", "AAPL", "--days", "3", "--db", db, "--json"], tmp_path)
    assert json.loads(fresh.stdout)["new_symbols"] == ["AAPL"] and fresh.stderr == ""


def test_quiet_keeps_one_summary_line_and_counts_agree_with_their_nouns(tmp_path):
    db = str(tmp_path / "g.db")
    n = _sessions(10)
    out = run_cli(["backfill", "--symbols", "SPY,QQQQ", "--days", "10", "--quiet", "--db", db], tmp_path)
    assert out.returncode == 0 and out.stderr == ""
    [line] = out.stdout.splitlines()
    assert line.startswith(f"SPY,QQQQ {last_completed_session().date - dt.timedelta(days=9)}..")
    assert f": {2 * n} of {2 * n} sessions written, 0 skipped ({8 * n} snapshots, " in line
    assert line.endswith("; SYNTHETIC DATA; new symbols: SPY, QQQQ")
    stored = rows(db, "SELECT COUNT(*) FROM gex_history")[0][0]
    assert stored == 8 * n
    # One session: singular nouns.
    day = last_completed_session().date.isoformat()
    one = run_cli(["backfill", "--symbol", "IWM", "--start", day, "--end", day, "--quiet", "--db", db], tmp_path)
    assert ": 1 of 1 session written, 0 skipped (4 snapshots, " in one.stdout and "1 sessions" not in one.stdout
    forced = run_cli(["backfill", "--symbol", "IWM", "--start", day, "--end", day, "--force", "--db", db], tmp_path)
    assert "1 of 1 session written in" in forced.stdout and "1 sessions" not in forced.stdout
    again = ["backfill", "--symbol", "IWM", "--start", day, "--end", day, "--force", "--quiet", "--db", db]
    assert "4 of them replacing stored ones" in run_cli(again, tmp_path).stdout


def test_status_check_reports_a_symbol_with_no_rows(db_url, tmp_path):
    fill = run_cli(["backfill", "--symbols", "SPY,QQQ", "--days", "10", "--quiet", "--db", db_url], tmp_path)
    assert fill.returncode == 0
    out = run_cli(["status", "--check", "--symbol", "XYZ", "--db", db_url], tmp_path)
    assert out.returncode == 1
    assert out.stdout.splitlines() == ["XYZ: no_rows: nothing stored for XYZ: the database holds QQQ, SPY"]
    assert out.stderr.strip() == "1 problem found in 1 symbol"
    typo = run_cli(["status", "--check", "--symbol", "QQQQ", "--db", db_url], tmp_path)
    assert typo.returncode == 1 and "(did you mean QQQ?)" in typo.stdout
    ok = run_cli(["status", "--check", "--symbol", "SPY", "--db", db_url], tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == "ok: no problems found in 1 symbol"
    both = run_cli(["status", "--check", "--symbol", "SPY,XYZ", "--db", db_url], tmp_path)
    assert both.returncode == 1 and both.stdout.startswith("XYZ: no_rows")
    assert "1 problem found in 2 symbols" in both.stderr
    shown = run_cli(["status", "--symbol", "XYZ", "--db", db_url], tmp_path, env={"COLUMNS": "200"})
    assert shown.returncode == 0 and "no_rows: nothing stored for XYZ" in shown.stdout


def test_status_shows_what_the_check_reports(db_url, tmp_path):
    """One source of truth: every problem line of --check is in `status`, word for word."""
    from sqlalchemy import text

    from helpers import engine_for

    fill = run_cli(["backfill", "--symbols", "SPY,QQQ", "--days", "30", "--quiet", "--db", db_url], tmp_path)
    assert fill.returncode == 0
    days = [d for (d,) in rows(db_url, "SELECT date FROM gamma_daily_summary WHERE symbol='SPY' ORDER BY date")]
    eng = engine_for(db_url)
    with eng.begin() as conn:  # a session loses a snapshot, another its summary, a third becomes an EOD import
        conn.execute(text("DELETE FROM gex_history WHERE symbol='SPY' AND timestamp = :t"),
                     {"t": f"{days[3]} 12:30:00"})
        conn.execute(text("DELETE FROM gamma_daily_summary WHERE symbol='SPY' AND date = :d"), {"d": days[5]})
        for table in ("gex_history", "gamma_history"):
            conn.execute(text(f"DELETE FROM {table} WHERE symbol='QQQ' AND timestamp LIKE :d "
                              "AND timestamp NOT LIKE :c"), {"d": f"{days[7]}%", "c": f"{days[7]} 16:00%"})
        conn.execute(text("UPDATE gamma_daily_summary SET snapshots_count = 1, chain_source = 'generic:x.csv' "
                          "WHERE symbol='QQQ' AND date = :d"), {"d": days[7]})
    eng.dispose()
    check = run_cli(["status", "--check", "--db", db_url], tmp_path)
    assert check.returncode == 1
    problems = check.stdout.splitlines()
    assert [p.split(": ")[1] for p in problems] == ["gap", "short_session"]
    assert problems[0] == f"SPY: gap: 1 session between {days[0]} and {days[-1]} has no daily summary: {days[5]}"
    assert problems[1] == f"SPY: short_session: 1 session with fewer than 4 snapshots in gex_history: {days[3]}"
    assert "2 problems found in 2 symbols" in check.stderr
    shown = run_cli(["status", "--db", db_url], tmp_path, env={"COLUMNS": "250"})
    assert shown.returncode == 0
    for p in problems:
        symbol, kind, message = p.split(": ", 2)
        assert f"  {kind}: {message}" in shown.stdout
    assert "SPY: 2 problems (as `status --check` reports):" in shown.stdout
    assert "QQQ: no problems found" in shown.stdout
    assert "QQQ: 1 session from imported end-of-day chains (the close snapshot only, by design)" in shown.stdout


def test_status_kinds_are_pluggable(tmp_path):
    """A kind registered with problem_kind is checked by --check and shown by status, in its order."""
    from gexhistory.store import status as st
    from gexhistory.store.db import open_engine

    db = str(tmp_path / "g.db")
    assert run_cli(["backfill", "--days", "10", "--quiet", "--db", db], tmp_path).returncode == 0
    eng = open_engine(db, must_exist=True, write=False)
    try:
        @st.problem_kind("every_symbol", "a kind that reports every symbol (this test's)")
        def _every(facts):
            return [f"{len(facts.summary_days)} summaries seen"]

        assert list(st.KINDS)[-1] == "every_symbol"
        found = st.check_symbol(eng, "SPY")
        assert [p.line() for p in found] == [f"SPY: every_symbol: {_sessions(10)} summaries seen"]
        assert st.symbol_status(eng, "SPY").problems == found
    finally:
        del st.KINDS["every_symbol"]
        eng.dispose()
    assert Path(db).exists()
