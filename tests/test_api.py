"""`import gexhistory as gx`: what a notebook user relies on, checked against direct SQL reads.

The frames must hold exactly the stored rows and values (one row per snapshot, NULL as missing,
New York timestamps), the windows must include both ends, the errors must be the documented classes,
and `import gexhistory` alone must stay cheap for the CLI that runs it every time.
"""

from __future__ import annotations

import datetime as dt
import inspect
import socket
import sqlite3
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import gexhistory as gx
from gexhistory import api, errors
from api_data import CSV_SYMBOL, END, START, SYNTHETIC, py
from gexhistory.calendar import sessions_between
from gexhistory.store.frames import HISTORY_GAMMA, HISTORY_GEX
from gexhistory.store.schema import gamma_daily_summary, regime_signals
from helpers import REPO, engine_for, rows, run_cli

N_SESSIONS = len(sessions_between(START, END))


def _frame_rows(df: pd.DataFrame) -> list[tuple]:
    flat = df.reset_index()
    return [tuple(py(v) for v in r) for r in flat.itertuples(index=False)]


def _sql_rows(db: str, sql: str, **params) -> list[tuple]:
    return [tuple(py(v) for v in r) for r in rows(db, sql, **params)]


# ---- the package itself ------------------------------------------------------------------------------

def test_import_gexhistory_loads_no_heavy_module():
    probe = textwrap.dedent("""
        import sys
        import gexhistory as gx
        heavy = ("pandas", "numpy", "sqlalchemy", "pyarrow", "gexhistory.api", "gexhistory.pipeline")
        print(sorted(m for m in heavy if m in sys.modules))
        gx.BadInput, gx.ProviderError, gx.__version__  # the exception family is as cheap
        print(sorted(m for m in heavy if m in sys.modules))
        gx.history
        print("gexhistory.api" in sys.modules and "pandas" in sys.modules)
    """)
    env_path = str(REPO / "src")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["[]", "[]", "True"]


def test_every_public_name_resolves_and_is_documented():
    assert gx.__version__ == "0.1.0" and set(dir(gx)) >= set(gx.__all__)
    for name in gx.__all__:
        obj = getattr(gx, name)
        if name == "__version__":
            continue
        doc = inspect.getdoc(obj)
        assert doc and len(doc) > 20, name
        if inspect.isfunction(obj):
            assert obj.__module__ == "gexhistory.api", name
            if inspect.signature(obj).parameters:
                assert "Parameters\n----------" in doc and "Returns\n-------" in doc, name
    assert gx.BackfillResult is type(gx.BackfillResult(1, START, END, "x", False, []))
    assert gx.BadInput is errors.BadInput and issubclass(gx.BadDatabase, gx.BadInput)
    assert issubclass(gx.ProviderError, gx.WorkFailed) and issubclass(gx.WorkFailed, gx.GexHistoryError)
    assert {"profile", "compute_gex"} <= set(gx.__all__) and gx.profile is api.profile
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gx.nope  # noqa: B018


# ---- backfill ----------------------------------------------------------------------------------------

def test_backfill_result_matches_the_stored_rows(stored_db):
    db, results = stored_db
    res = results["synthetic"]
    assert isinstance(res, gx.BackfillResult) and res.synthetic and res.data_source == "synthetic"
    assert (res.start, res.end) == (START, END) and [s.symbol for s in res.symbols] == SYNTHETIC
    for table, per_session in (("gex_history", 4), ("gamma_history", 4), ("gamma_daily_summary", 1)):
        stored = dict(rows(db, f"SELECT symbol, COUNT(*) FROM {table} WHERE symbol IN ('SPY', 'QQQ') GROUP BY symbol"))
        assert stored == {s: per_session * N_SESSIONS for s in SYNTHETIC}, table
        assert res.totals()[table].inserted == per_session * N_SESSIONS * 2
    n_signals = rows(db, "SELECT COUNT(*) FROM regime_signals WHERE symbol IN ('SPY', 'QQQ')")[0][0]
    assert res.totals()["regime_signals"].inserted == n_signals > 0
    assert rows(db, "SELECT status, data_source FROM backfill_runs WHERE id = :i", i=res.run_id) == [("ok", "synthetic")]
    csv = results["csv"]
    assert csv.data_source == "csv:iwm.csv" and not csv.synthetic
    # A rerun has nothing to do and says so.
    again = gx.backfill(SYNTHETIC, start=START, end=END, source="synthetic", db=db)
    assert again.totals()["gex_history"].inserted == 0 and again.totals()["gex_history"].skipped == 4 * N_SESSIONS * 2


@pytest.mark.parametrize("kwargs, message", [
    ({"days": 0}, "days must be between 1 and 20000, got 0"),
    ({"days": 5.5}, "days must be between 1 and 20000, got 5.5"),
    ({"days": 5, "start": "2025-01-02"}, "give either days or start/end, not both"),
    ({"start": "2025-06-10", "end": "2025-06-02"}, "end 2025-06-02 is before start 2025-06-10"),
    ({"start": "June 2"}, "start 'June 2' is not a date (expected YYYY-MM-DD)"),
    ({"symbols": "SPY,$X"}, "malformed symbol '$X'"),
    ({"symbols": []}, "no symbol given"),
    ({"source": "bogus"}, "unknown source 'bogus'"),
    ({"rate": 0}, "rate must be a number of requests per minute above 0 and at most 1e+06, got 0"),
    ({"rate": float("inf")}, "rate must be a number of requests per minute above 0 and at most 1e+06, got inf"),
    ({"rate": float("nan")}, "rate must be a number of requests per minute above 0 and at most 1e+06, got nan"),
    ({"seed": "42"}, "seed must be a whole number"),
    ({"seed": -1}, "seed must be a whole number from 0 to 2**64-1, got -1"),
    ({"seed": 2**64}, "seed must be a whole number from 0 to 2**64-1, got 18446744073709551616"),
    ({"batch_sessions": 0}, "batch_sessions must be between 1 and 100000"),
])
def test_backfill_bad_arguments_are_bad_input_and_write_nothing(tmp_path, kwargs, message):
    db = tmp_path / "g.db"
    args = {"symbols": "SPY", "days": 5, "source": "synthetic", "db": db}
    if "start" in kwargs:
        args.pop("days")
    with pytest.raises(gx.BadInput) as err:
        gx.backfill(**{**args, **kwargs})
    assert message in str(err.value) and not str(err.value).startswith("--")
    assert not db.exists()


def test_backfill_errors_are_typed(tmp_path, monkeypatch):
    with pytest.raises(gx.BadFile, match="bars file .*missing.csv does not exist"):
        gx.backfill("SPY", days=5, source="csv", bars=tmp_path / "missing.csv", db=tmp_path / "a.db")
    with pytest.raises(gx.BadDatabase, match="is not an SQLite database"):
        (tmp_path / "junk.db").write_text("not a database at all")
        gx.backfill("SPY", days=5, source="synthetic", db=tmp_path / "junk.db")
    # A provider that cannot be reached: one try, then ProviderError (exit 1 on the command line).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var, value in {"POLYGON_API_KEY": "test-key-123", "MASSIVE_BASE_URL": f"http://127.0.0.1:{port}",
                       "MASSIVE_MAX_TRIES": "1", "MASSIVE_BACKOFF_SECONDS": "0"}.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(gx.ProviderError, match="massive: .* failed after 1 try;") as err:
        gx.backfill("SPY", days=5, source="polygon", db=tmp_path / "p.db")
    assert "test-key-123" not in str(err.value) and err.value.exit_code == 1


def _refuse_inserts(db: str, symbol: str) -> None:
    eng = engine_for(db)
    with eng.begin() as conn:
        conn.exec_driver_sql(f"CREATE TRIGGER refuse_{symbol} BEFORE INSERT ON gex_history WHEN NEW.symbol = "
                             f"'{symbol}' BEGIN SELECT RAISE(ABORT, 'storage refused {symbol}'); END")
    eng.dispose()


def test_database_failures_during_work_are_database_errors(tmp_path):
    db = str(tmp_path / "g.db")
    assert run_cli(["init", "--db", db], tmp_path).returncode == 0
    _refuse_inserts(db, "QQQ")
    with pytest.raises(gx.DatabaseError, match="database error: storage refused QQQ"):
        gx.backfill("QQQ", start="2025-06-02", end="2025-06-06", source="synthetic", db=db)
    # Several symbols: the others are stored, and the error carries the whole result.
    with pytest.raises(gx.WorkFailed, match=r"1 of 2 symbols failed \(QQQ: .*storage refused QQQ\); the others. rows are stored") as err:
        gx.backfill(["SPY", "QQQ"], start="2025-06-02", end="2025-06-06", source="synthetic", db=db)
    assert [s.symbol for s in err.value.result.failed] == ["QQQ"]
    assert rows(db, "SELECT COUNT(*) FROM gex_history WHERE symbol = 'SPY'")[0][0] == 20


# ---- history, daily, signals -------------------------------------------------------------------------

@pytest.mark.parametrize("symbol, per_session", [("SPY", 4), (CSV_SYMBOL, 2)])  # daily CSV bars: open, close
def test_history_is_every_snapshot_with_both_tables_columns(stored_db, symbol, per_session):
    db, _ = stored_db
    df = gx.history(symbol.lower(), db=db)
    assert df.index.name == "timestamp" and str(df.index.tz) == "America/New_York"
    assert df.index.is_monotonic_increasing and df.index.is_unique and len(df) == per_session * N_SESSIONS
    names = [c.name for c in HISTORY_GEX + HISTORY_GAMMA]
    assert ["timestamp", *df.columns] == names
    gex_cols = ", ".join(f"g.{c.name}" for c in HISTORY_GEX)
    gamma_cols = ", ".join(f"h.{c.name}" for c in HISTORY_GAMMA)
    expected = _sql_rows(db, f"SELECT {gex_cols}, {gamma_cols} FROM gex_history g JOIN gamma_history h "
                             "ON h.symbol = g.symbol AND h.timestamp = g.timestamp WHERE g.symbol = :s "
                             "ORDER BY g.timestamp", s=symbol)
    assert _frame_rows(df) == expected
    # The columns shown once hold gamma_history's values too: nothing is lost by the join.
    shared = [c.name for c in HISTORY_GEX if c.name not in ("timestamp", "symbol", "mm_state", "call_gex",
                                                             "put_gex", "gex_unit")]
    mismatched = rows(db, "SELECT COUNT(*) FROM gex_history g JOIN gamma_history h ON h.symbol = g.symbol AND "
                          "h.timestamp = g.timestamp WHERE " + " OR ".join(
                              f"NOT (g.{c} = h.{c} OR (g.{c} IS NULL AND h.{c} IS NULL))" for c in shared))
    assert mismatched == [(0,)]
    no_flip = rows(db, "SELECT COUNT(*) FROM gex_history WHERE symbol = :s AND flip_point IS NULL", s=symbol)[0][0]
    assert df["flip_point"].isna().sum() == no_flip and (~df["flip_found"]).sum() == no_flip
    assert df["net_gex"].dtype == "float64" and str(df["run_id"].dtype) == "Int64"
    assert str(df["flip_found"].dtype) == "boolean" and df["date"].dtype.kind == "M"
    assert set(df["regime"]) <= {"POSITIVE", "NEGATIVE", "NEUTRAL"}


def test_history_window_includes_both_ends(stored_db):
    db, _ = stored_db
    df = gx.history("QQQ", db=db, start="2025-06-02", end=pd.Timestamp("2025-06-06").date())
    n = rows(db, "SELECT COUNT(*) FROM gex_history WHERE symbol = 'QQQ' AND timestamp >= '2025-06-02 00:00:00' "
                 "AND timestamp <= '2025-06-06 23:59:59'")[0][0]
    assert len(df) == n == 20
    assert str(df.index[0]) == "2025-06-02 09:30:00-04:00" and str(df.index[-1]) == "2025-06-06 16:00:00-04:00"
    one_day = gx.history("QQQ", db=db, start="2025-06-03", end="2025-06-03")
    assert [t.strftime("%H:%M") for t in one_day.index] == ["09:30", "12:30", "15:00", "16:00"]
    assert gx.history("QQQ", db=db, start="2030-01-01").empty


@pytest.mark.parametrize("symbol", ["SPY", CSV_SYMBOL])
def test_daily_matches_the_summary_table_with_nulls_as_missing(stored_db, symbol):
    db, _ = stored_db
    df = gx.daily(symbol, db=db, start=START, end="2025-06-30")
    cols = ["date", *(c.name for c in gamma_daily_summary.columns if c.name not in ("id", "date"))]
    expected = _sql_rows(db, f"SELECT {', '.join(cols)} FROM gamma_daily_summary WHERE symbol = :s "
                             "AND date <= '2025-06-30' ORDER BY date", s=symbol)
    assert ["date", *df.columns] == cols and _frame_rows(df) == expected
    assert df.index.name == "date" and df.index[0] == pd.Timestamp(START) and df.index.dtype.kind == "M"
    assert df.index[-1] == pd.Timestamp("2025-06-30")
    nulls = rows(db, "SELECT COUNT(*) FROM gamma_daily_summary WHERE symbol = :s AND date <= '2025-06-30' "
                     "AND price_gex_corr_20d IS NULL", s=symbol)[0][0]
    assert df["price_gex_corr_20d"].isna().sum() == nulls == (20 if symbol == CSV_SYMBOL else 0)
    assert str(df["snapshots_count"].dtype) == "Int64"
    assert (df["snapshots_count"] == (2 if symbol == CSV_SYMBOL else 4)).all()


def test_signals_with_outcomes_all_symbols_or_one_pattern(stored_db):
    db, _ = stored_db
    cols = ["timestamp", *(c.name for c in regime_signals.columns if c.name not in ("id", "timestamp"))]
    every = gx.signals(db=db)
    expected = _sql_rows(db, f"SELECT {', '.join(cols)} FROM regime_signals ORDER BY timestamp, symbol, "
                             "primary_regime_type")
    assert ["timestamp", *every.columns] == cols and _frame_rows(every) == expected
    assert set(every["symbol"]) == {"SPY", "QQQ", CSV_SYMBOL}
    pending = rows(db, "SELECT COUNT(*) FROM regime_signals WHERE signal_correct IS NULL")[0][0]
    assert pending > 0 and every["signal_correct"].isna().sum() == pending  # the window's last week
    assert str(every["signal_correct"].dtype) == "Int64"
    top = every["primary_regime_type"].value_counts().index[0]
    one = gx.signals("qqq", db=db, pattern=top.lower(), start="2025-06-01")
    n = rows(db, "SELECT COUNT(*) FROM regime_signals WHERE symbol = 'QQQ' AND primary_regime_type = :p "
                 "AND timestamp >= '2025-06-01 00:00:00'", p=top)[0][0]
    assert len(one) == n and set(one["primary_regime_type"]) <= {top} and set(one["symbol"]) <= {"QQQ"}


def test_read_errors_name_what_is_wrong(stored_db, tmp_path):
    db, _ = stored_db
    with pytest.raises(gx.BadInput, match=f"no stored history for DIA: the database holds {CSV_SYMBOL}, QQQ, SPY"):
        gx.history("DIA", db=db)
    with pytest.raises(gx.BadInput, match="malformed symbol"):
        gx.daily("not a symbol", db=db)
    with pytest.raises(gx.BadInput, match="give one symbol"):
        gx.history("SPY,QQQ", db=db)
    with pytest.raises(gx.BadInput, match="end 2025-06-01 is before start 2025-07-01"):
        gx.signals(db=db, start="2025-07-01", end="2025-06-01")
    with pytest.raises(gx.BadInput, match="unknown pattern 'PIN'"):
        gx.signals(db=db, pattern="PIN")
    missing = tmp_path / "nothing.db"
    with pytest.raises(gx.BadDatabase, match=f"no database at {missing}: run gexhistory backfill first"):
        gx.history("SPY", db=missing)
    assert not missing.exists()  # reading never creates a database
    (tmp_path / "text.db").write_text("hello")
    with pytest.raises(gx.BadDatabase, match="is not an SQLite database"):
        gx.daily("SPY", db=tmp_path / "text.db")
    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE other (x)").connection.close()
    with pytest.raises(gx.BadDatabase, match="has no gexhistory tables: run gexhistory backfill first"):
        gx.symbols(tmp_path / "empty.db")
    assert gx.symbols(db) == [CSV_SYMBOL, "QQQ", "SPY"]


# ---- the guide's first command, then one line of Python ----------------------------------------------

def test_history_one_liner_after_the_readme_first_command(tmp_path):
    first = run_cli(["--days", "365"], tmp_path, script="backfill_historical_data.py")
    assert first.returncode == 0, first.stderr
    out = subprocess.run(
        [sys.executable, "-c", "import gexhistory as gx; print(gx.history('SPY', db='gex_copilot.db').tail())"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    last = rows(str(tmp_path / "gex_copilot.db"), "SELECT timestamp FROM gex_history ORDER BY timestamp DESC LIMIT 5")
    assert lines[0].split()[0] == "symbol" and lines[1].split()[0] == "timestamp"
    shown = [line.split()[:2] for line in lines[2:7]]  # date, then wall clock and its UTC offset
    assert [f"{day} {clock[:8]}" for day, clock in shown] == [r[0] for r in reversed(last)]
    assert all(clock[8:] in ("-05:00", "-04:00") for _, clock in shown) and lines[-1] == "[5 rows x 24 columns]"


def test_import_chains_stores_the_chain_and_rejects_a_bad_file_whole(tmp_path):
    db = tmp_path / "g.db"
    good = tmp_path / "spy.csv"
    good.write_text("date,underlying,expiration,strike,right,oi,iv,spot\n"
                    + "".join(f"2025-06-02,SPY,2025-06-20,{k},{r},{500 + k % 7},0.2,600\n"
                              for k in range(580, 625, 5) for r in "CP"))
    bad = tmp_path / "bad.csv"
    bad.write_text("date,underlying,expiration,strike,right,oi,iv\n2025-06-02,SPY,2025-06-20,600,X,10,0.2\n")
    with pytest.raises(gx.BadInput, match=f"{bad}:2: "):
        gx.import_chains([good, bad], db=db)
    assert not db.exists()  # every file is checked before the database is opened
    res = gx.import_chains(good, db=db)
    assert isinstance(res, gx.ImportResult) and res.files[0]["contracts"] == 18
    stored = rows(str(db), "SELECT timestamp, net_gex, chain_source FROM gex_history WHERE symbol = 'SPY'")
    assert stored == [("2025-06-02 16:00:00", res.sessions[0]["net_gex"], "generic:spy.csv")]
    assert gx.history("SPY", db=db)["chain_source"].tolist() == ["generic:spy.csv"]


def test_profile_is_the_stored_snapshot_by_strike(stored_db):
    db, _ = stored_db
    ts, net, flip = _sql_rows(db, "SELECT timestamp, net_gex, flip_point FROM gex_history WHERE symbol = 'SPY' "
                                  "ORDER BY timestamp DESC LIMIT 1")[0]
    df = gx.profile("SPY", db=db)
    assert df.attrs["timestamp"].strftime("%Y-%m-%d %H:%M") == ts[:16]
    assert df.attrs["stored_net_gex"] == net
    assert df["strike"].is_monotonic_increasing
    # Per-strike call and put GEX add up to the stored net GEX, and so do the expiry buckets.
    assert df["net_gex"].sum() == pytest.approx(net, rel=1e-9)
    assert (df["call_gex"] + df["put_gex"]).sum() == pytest.approx(net, rel=1e-9)
    buckets = [c for c in df.columns if c.startswith("gex_")]
    assert df[buckets].to_numpy().sum() == pytest.approx(net, rel=1e-9)
    assert (df.attrs["flip_point"] is None) == (flip is None)


def test_compute_gex_on_a_users_chain_matches_an_independent_computation():
    from test_chain_import import AS_OF, NY, _big_chain, _independent

    contracts = _big_chain()
    chain = pd.DataFrame(contracts, columns=["expiration", "strike", "right", "open_interest", "iv"])
    at = dt.datetime.combine(AS_OF, dt.time(16), tzinfo=NY)
    got = gx.compute_gex(chain, 600.0, at)
    net, call, put, flip, call_wall, put_wall = _independent(contracts, 600.0, at)
    assert got["net_gex"] == pytest.approx(net, rel=1e-9)
    assert got["call_gex"] == pytest.approx(call, rel=1e-9)
    assert got["put_gex"] == pytest.approx(put, rel=1e-9)
    assert got["call_wall"] == call_wall and got["put_wall"] == put_wall
    assert got["flip_point"] == pytest.approx(flip, rel=1e-6)
    by_strike = gx.compute_gex(chain, 600.0, "2025-06-02 16:00", by_strike=True)
    assert by_strike["net_gex"].sum() == pytest.approx(net, rel=1e-9)
    with pytest.raises(gx.BadInput, match="open_interest"):
        gx.compute_gex(chain.drop(columns="open_interest"), 600.0, at)
