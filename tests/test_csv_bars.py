"""`--source csv --bars FILE`: a user's daily bars, checked row by row, priced at the open and close."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gexhistory.calendar import sessions_between
from gexhistory.errors import BadInput
from gexhistory.sources.csv_bars import CsvBars
from helpers import rows, run_cli

START, END = dt.date(2024, 6, 3), dt.date(2025, 7, 31)  # covers the July 3 2025 early close
WINDOW = ("2025-06-23", "2025-07-31")


def bar(i: int) -> tuple[float, float, float, float, float]:
    """A hand-made daily series: o, h, l, c, volume."""
    c = round(500 + 10 * np.sin(i / 9) + 0.1 * i, 2)
    o = round(c - 1.5 + (i % 5) * 0.5, 2)
    return o, round(max(o, c) + 1.25, 2), round(min(o, c) - 1.25, 2), c, 60_000_000 + 1000 * i


def write(path, header="date,open,high,low,close,volume", start=START, end=END, skip=(), extra=(), cols=None):
    lines = [header]
    for i, s in enumerate(sessions_between(start, end)):
        if s.date in skip:
            continue
        o, h, lo, c, v = bar(i)
        values = {"date": s.date.isoformat(), "open": o, "high": h, "low": lo, "close": c, "volume": v}
        lines.append(",".join(str(values[k]) for k in (cols or header.split(","))))
    lines.extend(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


def expected(day: dt.date) -> tuple[float, ...]:
    i = [s.date for s in sessions_between(START, END)].index(day)
    return bar(i)


def test_ohlcv_file_prices_open_and_close_snapshots(tmp_path, db_url):
    f = write(tmp_path / "my bars.csv")
    out = run_cli(["backfill", "--source", "csv", "--bars", str(f), "--start", WINDOW[0], "--end", WINDOW[1],
                   "--db", db_url, "--json"], tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["data_source"] == "csv:my bars.csv" and summary["synthetic"] is False
    assert any("only the open (09:30) and the close snapshots" in n for n in summary["notes"])
    window = sessions_between(dt.date.fromisoformat(WINDOW[0]), dt.date.fromisoformat(WINDOW[1]))
    for s in window:
        o, _, _, c, _ = expected(s.date)
        got = rows(db_url, "SELECT time_of_day, spot_price, data_source FROM gamma_history WHERE date=:d "
                           "ORDER BY timestamp", d=s.date.isoformat())
        assert got == [("09:30", o, "csv:my bars.csv"), ("13:00" if s.early_close else "16:00", c, "csv:my bars.csv")]
    assert rows(db_url, "SELECT COUNT(*) FROM gex_history")[0][0] == 2 * len(window)
    assert rows(db_url, "SELECT DISTINCT data_source FROM gamma_daily_summary") == [("csv:my bars.csv",)]
    stored = rows(db_url, "SELECT timestamp, open, close, volume, close_only FROM price_bars "
                          "WHERE timeframe='1d' AND timestamp = '2025-07-03 00:00:00'")
    o, _, _, c, v = expected(dt.date(2025, 7, 3))
    assert stored == [("2025-07-03 00:00:00", o, c, v, False)]
    # the file is reread every run and bars are upserted, not duplicated
    again = run_cli(["backfill", "--source", "csv", "--bars", str(f), "--start", WINDOW[0], "--end", WINDOW[1],
                     "--db", db_url, "--force", "--quiet"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert rows(db_url, "SELECT COUNT(*), COUNT(DISTINCT timestamp) FROM price_bars")[0] == (len(sessions_between(START, END)),) * 2


def test_close_only_file_is_accepted_and_flagged(tmp_path):
    f = write(tmp_path / "closes.csv", header="date,close,volume")
    db = str(tmp_path / "g.db")
    out = run_cli(["backfill", "--bars", str(f), "--start", WINDOW[0], "--end", WINDOW[1], "--db", db], tmp_path,
                  env={"COLUMNS": "250"})
    assert out.returncode == 0, out.stderr  # --bars alone selects the csv source
    assert "close-only" in out.stdout
    for d, t, spot in rows(db, "SELECT date, time_of_day, spot_price FROM gamma_history ORDER BY timestamp"):
        s = sessions_between(dt.date.fromisoformat(d), dt.date.fromisoformat(d))[0]
        assert t == ("13:00" if s.early_close else "16:00") and spot == expected(s.date)[3]
    assert rows(db, "SELECT DISTINCT snapshots_count FROM gamma_daily_summary") == [(1,)]
    assert rows(db, "SELECT DISTINCT close_only FROM price_bars") == [(1,)]


def test_symbol_column_selects_rows(tmp_path):
    lines = ["Ticker,Date,Close,Volume"]
    for i, s in enumerate(sessions_between(dt.date(2025, 6, 2), dt.date(2025, 6, 13))):
        lines += [f"SPY,{s.date},{500 + i},1000", f"QQQ,{s.date},{400 + i},2000"]
    (tmp_path / "two.csv").write_text("\n".join(lines) + "\n")
    src = CsvBars(tmp_path / "two.csv", ["SPY", "QQQ"])
    q = src.daily_bars("QQQ", dt.date(2025, 6, 2), dt.date(2025, 6, 13))
    assert list(q.close) == [400.0 + i for i in range(10)] and q.close_only
    with pytest.raises(BadInput, match="no rows for IWM"):
        CsvBars(tmp_path / "two.csv", ["IWM"])


@pytest.mark.parametrize("name, content, needle", [
    ("no header", "2025-06-02,1,2,0.5,1.5,100\n", "header must name date and close"),
    ("bad number", "date,close\n2025-06-02,abc\n", "line 2: close 'abc' is not a number"),
    ("bad date", "date,close\n06/02/2025,500\n", "line 2: date '06/02/2025' is not YYYY-MM-DD"),
    ("weekend", "date,close\n2025-06-02,500\n2025-06-07,501\n", "line 3: 2025-06-07 is not an NYSE session"),
    ("holiday", "date,close\n2025-07-04,500\n", "2025-07-04 is not an NYSE session"),
    ("duplicate", "date,close\n2025-06-02,500\n2025-06-02,501\n", "line 3: a second row for 2025-06-02"),
    ("incoherent", "date,open,high,low,close\n2025-06-02,10,11,9,12\n", "line 2: incoherent bar"),
    ("negative", "date,close\n2025-06-02,-5\n", "line 2: close '-5' must be a price from 0.0001 to below 1e+07"),
    ("zero price", "date,close\n2025-06-02,0\n", "line 2: close '0' must be a price"),
    ("tiny price", "date,close\n2025-06-02,1e-300\n", "line 2: close '1e-300' must be a price"),
    ("huge close", "date,close\n2025-06-02,1e308\n", "line 2: close '1e308' must be a price"),
    ("price at the bound", "date,close\n2025-06-02,10000000\n", "line 2: close '10000000' must be a price"),
    ("infinite open", "date,open,high,low,close\n2025-06-02,inf,inf,9,10\n", "line 2: open 'inf' must be a price"),
    ("nan high", "date,open,high,low,close\n2025-06-02,10,nan,9,10\n", "line 2: high 'nan' must be a price"),
    ("huge volume", "date,close,volume\n2025-06-02,500,1e12\n", "line 2: volume '1e12' must be a number from 0"),
    ("negative volume", "date,close,volume\n2025-06-02,500,-1\n", "line 2: volume '-1' must be a number"),
    ("nan volume", "date,close,volume\n2025-06-02,500,NaN\n", "line 2: volume 'NaN' must be a number"),
    ("year 0", "date,close\n0000-06-02,500\n", "line 2: date '0000-06-02' is not YYYY-MM-DD"),
    ("year 10000", "date,close\n10000-06-02,500\n", "line 2: date '10000-06-02' is not YYYY-MM-DD"),
    ("year 9999", "date,close\n9999-12-31,500\n", "line 2: 9999-12-31 is not an NYSE session"),
    ("partial ohlc", "date,open,close\n2025-06-02,10,11\n", "open, high and low together"),
    ("short row", "date,open,high,low,close\n2025-06-02,10,11\n", "line 2: no close value"),
    ("empty", "", "is empty"),
    ("header only", "date,close\n", "no rows"),
])
def test_malformed_files_are_bad_input(tmp_path, name, content, needle):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(BadInput) as err:
        CsvBars(f)
    msg = str(err.value)
    assert msg.startswith("bars file bad.csv") and needle in msg and "\n" not in msg


@pytest.mark.parametrize("content", ["date,close\n2025-06-02,abc\n", "date,close\n2025-06-07,500\n"])
def test_a_bad_row_is_one_line_exit_2_and_writes_nothing(tmp_path, content):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    out = run_cli(["backfill", "--source", "csv", "--bars", str(f), "--days", "10"], tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bars file bad.csv line 2"), lines
    assert not (tmp_path / "gex_copilot.db").exists()


def test_hole_or_short_file_names_the_missing_session(tmp_path):
    f = write(tmp_path / "holes.csv", skip={dt.date(2025, 7, 10)})
    with pytest.raises(BadInput, match="no row for SPY on 2025-07-10"):
        CsvBars(f).daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 7, 31))
    short = write(tmp_path / "short.csv", end=dt.date(2025, 7, 25))
    with pytest.raises(BadInput, match="no row for SPY on 2025-07-28 and 3 more"):
        CsvBars(short).daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 7, 31))


@pytest.mark.parametrize("args, needle", [
    (["--source", "csv"], "--source csv needs --bars"),
    (["--source", "synthetic", "--bars", "x.csv"], "--bars is for --source csv"),
    (["--source", "csv", "--bars", "nope.csv"], "does not exist"),
])
def test_option_errors(tmp_path, args, needle):
    out = run_cli(["backfill", "--days", "10", *args], tmp_path)
    assert out.returncode == 2 and needle in out.stderr


def test_one_symbolless_file_cannot_price_two_symbols(tmp_path):
    f = write(tmp_path / "b.csv")
    out = run_cli(["backfill", "--bars", str(f), "--symbols", "SPY,QQQ", "--days", "10"], tmp_path)
    assert out.returncode == 2 and "one symbol per run" in out.stderr


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.tuples(st.floats(1, 5000, allow_nan=False), st.floats(0, 0.2), st.floats(0, 0.2),
                               st.floats(-1, 1), st.integers(0, 10**10)), min_size=1, max_size=40))
def test_parsed_bars_equal_the_rows_written(tmp_path, data):
    sessions = sessions_between(dt.date(2025, 1, 2), dt.date(2025, 4, 30))[: len(data)]
    lines = ["date,open,high,low,close,volume"]
    want = []
    for s, (c, up, down, mix, v) in zip(sessions, data):
        hi, lo = c * (1 + up), c * (1 - down) if c * (1 - down) > 0 else c
        o = lo + (hi - lo) * (mix + 1) / 2
        row = [repr(o), repr(hi), repr(lo), repr(c), str(v)]
        lines.append(",".join([s.date.isoformat(), *row]))
        want.append((o, hi, lo, c, float(v)))
    f = tmp_path / "p.csv"
    f.write_text("\n".join(lines))
    b = CsvBars(f).daily_bars("SPY", sessions[0].date, sessions[-1].date)
    assert b.dates == [s.date for s in sessions]
    assert np.array_equal(np.column_stack([b.open, b.high, b.low, b.close, b.volume]), np.array(want))


def test_date_close_file_without_volume(tmp_path):
    f = write(tmp_path / "c.csv", header="date,close")
    db = str(tmp_path / "g.db")
    out = run_cli(["backfill", "--bars", str(f), "--start", WINDOW[0], "--end", WINDOW[1], "--db", db, "--quiet"],
                  tmp_path)
    assert out.returncode == 0, out.stderr
    got = rows(db, "SELECT date, spot_price, net_gex FROM gamma_history ORDER BY timestamp")
    assert len(got) == len(sessions_between(dt.date.fromisoformat(WINDOW[0]), dt.date.fromisoformat(WINDOW[1])))
    assert all(spot == expected(dt.date.fromisoformat(d))[3] and net is not None for d, spot, net in got)
    assert rows(db, "SELECT COUNT(*) FROM price_bars WHERE volume IS NULL AND close_only = 1")[0][0] > 0


# (case, how the bars file is spoiled, the words of the one error line): each found before the run is recorded.
BAD_FOR_THE_WINDOW = [
    ("starts after the window", {"start": dt.date(2025, 6, 30)}, "has no row for SPY on 2025-06-23"),
    ("a hole in the window", {"skip": {dt.date(2025, 7, 10)}}, "has no row for SPY on 2025-07-10"),
    ("ends before the window ends", {"end": dt.date(2025, 7, 15)}, "has no row for SPY on 2025-07-16"),
    ("another symbol only", {}, "has no rows for SPY"),
    ("a huge price", {"extra": ("2025-08-01,1,1e9,1,1,1",)}, "high '1e9' must be a price"),
    ("an infinite volume", {"extra": ("2025-08-01,1,1,1,1,inf",)}, "volume 'inf' must be a number"),
    ("a date past year 9999", {"extra": ("10000-01-03,1,1,1,1,1",)}, "date '10000-01-03' is not YYYY-MM-DD"),
]


@pytest.mark.parametrize("case, spoil, needle", BAD_FOR_THE_WINDOW, ids=[c[0] for c in BAD_FOR_THE_WINDOW])
def test_a_bad_bars_file_changes_nothing(tmp_path, db_url, case, spoil, needle):
    """Exit 2 with one line, and the database as it was: on SQLite the file's bytes (sha256), on
    PostgreSQL every table's content and the run log (backfill_runs gets no row)."""
    from dbcheck import content_digest, file_sha256, runs

    good = write(tmp_path / "good.csv")
    assert run_cli(["backfill", "--source", "csv", "--bars", str(good), "--start", WINDOW[0], "--end", WINDOW[0],
                    "--db", db_url, "--quiet"], tmp_path).returncode == 0
    if case == "another symbol only":
        bad = tmp_path / "bad.csv"
        bad.write_text("symbol,date,close\n" + "".join(f"QQQ,{s.date},{400 + i}\n" for i, s in
                                                       enumerate(sessions_between(START, END))))
    else:
        bad = write(tmp_path / "bad.csv", **spoil)
    sqlite = not db_url.startswith("postgresql")
    before = (file_sha256(db_url) if sqlite else None, content_digest(db_url), runs(db_url))
    out = run_cli(["backfill", "--source", "csv", "--bars", str(bad), "--start", WINDOW[0], "--end", WINDOW[1],
                   "--db", db_url, "--force"], tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: bars file bad.csv"), out.stderr
    assert needle in lines[0], lines
    assert (file_sha256(db_url) if sqlite else None, content_digest(db_url), runs(db_url)) == before
