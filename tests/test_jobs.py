"""--jobs: symbols in parallel worker processes give exactly the serial content; a failing symbol
is reported without losing the others' rows, and the run exits 1."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from gexhistory.calendar import sessions_between
from helpers import engine_for, rows, run_cli, table_digest

START, END = dt.date(2025, 6, 2), dt.date(2025, 6, 30)
SYMBOLS = ["SPY", "QQQ", "IWM"]
TABLES = ("gex_history", "gamma_history", "gamma_daily_summary", "regime_signals")


def _dump(db: str) -> dict:
    return {(t, s): table_digest(db, t, s) for t in TABLES for s in SYMBOLS}


def _opts(db, **kw):
    return BackfillOptions(kw.pop("symbols", SYMBOLS), START, END, source="synthetic", db=db, **kw)


def _fail_on_insert(db: str, symbol: str) -> None:
    """A real database error for one symbol only: a trigger that rejects its snapshot rows."""
    eng = engine_for(db)
    with eng.begin() as conn:
        if eng.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER reject_{symbol} BEFORE INSERT ON gex_history WHEN NEW.symbol = '{symbol}' "
                f"BEGIN SELECT RAISE(ABORT, 'storage refused {symbol}'); END")
        else:
            conn.exec_driver_sql(
                f"CREATE FUNCTION reject_{symbol}() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION 'storage refused {symbol}'; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql(
                f"CREATE TRIGGER reject_{symbol} BEFORE INSERT ON gex_history FOR EACH ROW "
                f"WHEN (NEW.symbol = '{symbol}') EXECUTE FUNCTION reject_{symbol}()")
    eng.dispose()


def test_jobs_2_gives_exactly_the_content_of_jobs_1(db_url, tmp_path):
    seen: list[tuple] = []
    res2 = run_backfill(_opts(db_url, jobs=2), progress=lambda *m: seen.append(m))
    parallel = _dump(db_url)
    n = len(sessions_between(START, END))
    assert [s.symbol for s in res2.symbols] == SYMBOLS and not res2.failed
    assert res2.totals()["gex_history"].inserted == 3 * 4 * n
    # One display fed from every worker: each symbol reports its start and its completion.
    assert {m for m in seen if m[1] == m[2]} == {(s, n, n) for s in SYMBOLS}
    if db_url.startswith("postgresql"):
        from conftest import _reset_pg

        _reset_pg(db_url)
        serial_db = db_url
    else:
        serial_db = str(tmp_path / "serial.db")
    run_backfill(_opts(serial_db, jobs=1))
    serial = _dump(serial_db)
    assert all(len(serial[("gex_history", s)]) == 4 * n for s in SYMBOLS)
    assert parallel == serial
    again = run_backfill(_opts(serial_db, jobs=2))  # a parallel rerun is a no-op
    assert all(c.inserted == 0 and c.replaced == 0 for c in again.totals().values())


def test_failing_symbol_keeps_the_others_and_exits_1(db_url, tmp_path):
    run_cli(["init", "--db", db_url], tmp_path)
    _fail_on_insert(db_url, "QQQ")
    out = run_cli(["backfill", "--symbols", ",".join(SYMBOLS), "--start", START.isoformat(), "--end",
                   END.isoformat(), "--source", "synthetic", "--jobs", "2", "--json", "--db", db_url], tmp_path)
    assert out.returncode == 1, out.stderr
    summary = json.loads(out.stdout)
    assert summary["failed"] == ["QQQ"]
    qqq = next(s for s in summary["symbols"] if s["symbol"] == "QQQ")
    assert "storage refused QQQ" in qqq["error"]
    err = out.stderr.strip().splitlines()
    assert any(line.startswith("QQQ: FAILED") and "storage refused QQQ" in line for line in err)
    assert err[-1].startswith("error: 1 of 3 symbols failed (QQQ)")
    n = len(sessions_between(START, END))
    counts = dict(rows(db_url, "SELECT symbol, COUNT(*) FROM gex_history GROUP BY symbol"))
    assert counts == {"SPY": 4 * n, "IWM": 4 * n}
    assert rows(db_url, "SELECT COUNT(*) FROM gamma_daily_summary WHERE symbol = 'QQQ'")[0][0] == 0
    status, message = rows(db_url, "SELECT status, message FROM backfill_runs ORDER BY id DESC")[0]
    assert status == "failed" and message.startswith("QQQ: ")


def test_failing_symbol_serial_run_goes_on(tmp_path):
    db = str(tmp_path / "g.db")
    run_cli(["init", "--db", db], tmp_path)
    _fail_on_insert(db, "SPY")
    res = run_backfill(_opts(db, jobs=1))
    assert [s.symbol for s in res.failed] == ["SPY"] and "storage refused SPY" in res.failed[0].error
    assert {s for (s,) in rows(db, "SELECT DISTINCT symbol FROM gamma_daily_summary")} == {"QQQ", "IWM"}


@pytest.mark.parametrize("jobs", ["0", "-1", "65"])
def test_bad_jobs_is_bad_input(tmp_path, jobs):
    out = run_cli(["backfill", "--days", "7", "--jobs", jobs, "--source", "synthetic"], tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --jobs must be between 1 and 64")
    assert not (tmp_path / "gex_copilot.db").exists()


def test_provider_rate_is_shared_among_jobs(monkeypatch):
    from gexhistory.pipeline.backfill import worker_source

    monkeypatch.setenv("POLYGON_API_KEY", "testkey_abc123")
    monkeypatch.delenv("MASSIVE_RATE_PER_MIN", raising=False)
    opts = BackfillOptions(SYMBOLS, START, END, source="polygon")
    one, two = worker_source(opts, 1).client.limiter, worker_source(opts, 2).client.limiter
    # 5 requests a minute in all: one process may send 5 per 60 s, each of two 2 per 48 s (2.5 a minute).
    assert (one.capacity, one.window) == (5, 60.0)
    assert (two.capacity, two.window) == (2, 48.0)
    opts.rate = 12
    assert worker_source(opts, 3).client.limiter.capacity == 4
