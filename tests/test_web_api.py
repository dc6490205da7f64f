"""The JSON API and pages, through FastAPI's TestClient, on a database built by the real backfill.

Every number is checked against direct SQL on the same database (or hand values for the hand-made
signals of pages_data.py), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import pages_data as pdata
from gexhistory.engine import stats
from gexhistory.web import format as fmt
from gexhistory.web.app import create_app
from helpers import rows


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request, tmp_path_factory):
    """(db, client) over one backfilled database per backend, shared by this module's read-only tests."""
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("pages") / "gex_copilot.db")
    else:
        from conftest import _reset_pg

        db = request.getfixturevalue("pg_database_url")
        _reset_pg(db)
    pdata.build(db)
    app = create_app(db)
    with TestClient(app) as client:
        yield db, client
    app.state.db.dispose()


def _get(client, url, status=200):
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:300])
    return r.json() if url.startswith("/api/") else r.text


def _window(db, start, end, table="gex_history"):
    return rows(db, f"SELECT timestamp, net_gex, spot_price, flip_point, call_wall, put_wall, regime FROM {table} "
                    "WHERE symbol='SPY' AND timestamp >= :a AND timestamp <= :b ORDER BY timestamp",
                a=f"{start} 00:00:00", b=f"{end} 23:59:59")


def test_gex_history_matches_sql(built):
    db, client = built
    body = _get(client, "/api/gex/history?symbol=SPY&days=30")
    snaps = _window(db, body["start"], body["end"])
    assert body["sessions_per_point"] == 0 and body["resolution"] == "snapshot" and body["count"] == len(snaps) > 0
    keys = ("timestamp", "net_gex", "spot_price", "flip_point", "call_wall", "put_wall", "regime")
    for got, want in zip(body["data"], snaps):
        assert tuple(got[k] for k in keys) == pytest.approx(want)
        assert got["symbol"] == "SPY" and got["mm_state"] in ("LONG_GAMMA", "SHORT_GAMMA")
        assert got["data_source"] == "synthetic" and got["chain_source"] == "modelled"
    last_date = rows(db, "SELECT MAX(date) FROM gamma_daily_summary WHERE symbol='SPY'")[0][0]
    assert body["end"] == last_date
    s = body["summary"]
    gex = [r[1] for r in snaps]
    assert s["avg_net_gex"] == pytest.approx(sum(gex) / len(gex))
    assert s["current_net_gex"] == pytest.approx(snaps[-1][1])
    assert s["pct_positive"] == pytest.approx(100 * sum(r[6] == "POSITIVE" for r in snaps) / len(snaps))
    assert s["snapshot_regime_flips"] == sum(a[6] != b[6] for a, b in zip(snaps, snaps[1:]))
    assert s["regime_changes"] == len(_close_changes(snaps))
    assert body["synthetic"] is True and body["modelled"] is True


def test_long_ranges_are_averaged_in_sql_by_whole_sessions(built):
    db, client = built
    body = _get(client, "/api/gex/history?symbol=SPY&days=all&max_points=40")
    snaps = _window(db, body["start"], body["end"])
    days = sorted({r[0][:10] for r in snaps})
    d = body["sessions_per_point"]
    assert d == -(-len(days) // 40) and body["resolution"] == f"{d} sessions"
    assert body["count"] == -(-len(days) // d) <= 40
    for i, got in enumerate(body["data"]):
        chunk_days = set(days[i * d:(i + 1) * d])
        chunk = [r for r in snaps if r[0][:10] in chunk_days]
        assert got["timestamp"] == chunk[-1][0] and got["snapshots"] == len(chunk)
        assert got["net_gex"] == pytest.approx(np.mean([r[1] for r in chunk]))
        assert got["spot_price"] == pytest.approx(np.mean([r[2] for r in chunk]))
        pos = sum(r[6] == "POSITIVE" for r in chunk)
        neg = sum(r[6] == "NEGATIVE" for r in chunk)
        want = "POSITIVE" if 2 * pos > len(chunk) else "NEGATIVE" if 2 * neg > len(chunk) else "NEUTRAL"
        assert got["regime"] == want


def _close_changes(snaps) -> list[tuple]:
    """By hand: the last snapshot of each day; NEUTRAL closes skipped; a change where the sided regime
    differs from the previous sided close's. (timestamp, from, to), oldest first."""
    closes = {}
    for r in snaps:
        closes[r[0][:10]] = r
    sided = [closes[d] for d in sorted(closes) if closes[d][6] != "NEUTRAL"]
    return [(b[0], a[6], b[6]) for a, b in zip(sided, sided[1:]) if a[6] != b[6]]


def test_regime_changes_are_counted_at_closes_with_hysteresis(built):
    db, client = built
    body = _get(client, "/api/gex/regime-changes?symbol=SPY&days=all&limit=5000")
    snaps = _window(db, body["start"], body["end"])
    want = _close_changes(snaps)[::-1]
    assert [(r["timestamp"], r["previous_regime"], r["regime"]) for r in body["data"]] == want
    assert body["total_changes"] == len(want) > 0 and "session closes" in body["method"]
    flips = sum(a[6] != b[6] for a, b in zip(snaps, snaps[1:]))
    assert body["snapshot_regime_flips"] == flips > len(want)  # the intraday flapping is not counted
    assert {r["regime"] for r in body["data"]} <= {"POSITIVE", "NEGATIVE"}
    # The band of held regimes on the chart changes exactly where the table says.
    from gexhistory.store.queries import Window, session_closes
    from gexhistory.web.views import hysteresis_states
    import datetime as dt

    closes = session_closes(client.app.state.db.engine(), Window("SPY", dt.date.fromisoformat(body["start"]),
                                                                  dt.date.fromisoformat(body["end"])))
    states = hysteresis_states(closes)
    switched = [(c["timestamp"], a, b) for c, a, b in zip(closes[1:], states, states[1:]) if a != b and a != "NEUTRAL"]
    assert switched == want[::-1]


def test_hysteresis_by_hand():
    from gexhistory.web.views import hysteresis_states

    regimes = ["NEUTRAL", "POSITIVE", "NEUTRAL", "POSITIVE", "NEUTRAL", "NEGATIVE", "NEGATIVE", "NEUTRAL", "POSITIVE"]
    held = hysteresis_states([{"regime": r} for r in regimes])
    assert held == ["NEUTRAL", "POSITIVE", "POSITIVE", "POSITIVE", "POSITIVE", "NEGATIVE", "NEGATIVE", "NEGATIVE",
                    "POSITIVE"]  # 2 changes, where snapshot counting would see 7 flips


def test_gamma_history_and_correlations_match_numpy(built):
    db, client = built
    hist = _get(client, "/api/gamma/SPY/history?days=60")
    want = rows(db, "SELECT timestamp, implied_volatility, put_call_ratio, distance_to_flip_pct FROM gamma_history "
                    "WHERE symbol='SPY' AND date >= :a AND date <= :b ORDER BY timestamp", a=hist["start"], b=hist["end"])
    assert [(r["timestamp"], r["implied_volatility"], r["put_call_ratio"], r["distance_to_flip_pct"])
            for r in hist["data"]] == [pytest.approx(w) for w in want]
    summ = _get(client, "/api/gamma/SPY/summary?days=60")["data"]
    snaps = rows(db, "SELECT spot_price, net_gex, implied_volatility, put_call_ratio FROM gamma_history "
                     "WHERE symbol='SPY' AND date >= :a AND date <= :b ORDER BY timestamp", a=hist["start"], b=hist["end"])
    a = np.array(snaps, dtype=float)
    cols = {"price": 0, "net_gex": 1, "iv": 2, "pcr": 3}
    # The modelled put share rises with realised volatility (ModelParams.put_call_vol_elasticity), so the
    # put/call ratio moves (sd over 1% of its mean) and is correlated like the rest (the near-constant
    # rule: tests/test_near_constant.py, on a ratio that does not move).
    assert a[:, 3].std() / a[:, 3].mean() > 0.01 and a[:, 2].std() / a[:, 2].mean() > 0.01
    for c in summ["correlations"]:
        x, y = (cols[p] for p in c["pair"].split("-"))
        assert c["levels_n"] == len(a)
        assert c["omitted"] is None
        assert c["levels"] == pytest.approx(np.corrcoef(a[:, x], a[:, y])[0, 1], abs=1e-9)
        dx, dy = np.diff(a[:, x]), np.diff(a[:, y])
        assert c["changes_n"] == len(a) - 1
        assert c["changes"] == pytest.approx(np.corrcoef(dx, dy)[0, 1], abs=1e-9)
    # The cards describe the picked range (60 days here), and say so.
    st = summ["stats"]
    avg_iv, n, days = rows(db, "SELECT AVG(implied_volatility), COUNT(*), COUNT(DISTINCT date) FROM gamma_history "
                               "WHERE symbol='SPY' AND date >= :a AND date <= :b", a=hist["start"], b=hist["end"])[0]
    assert st["snapshots"] == n and st["sessions"] == days and st["avg_iv"] == pytest.approx(avg_iv)
    assert (st["min_pcr"], st["max_pcr"]) == pytest.approx((a[:, 3].min(), a[:, 3].max()))
    assert st["range"] == f"{hist['start']} → {hist['end']}"  # 60 days is not one of the buttons
    assert summ["modelled_sessions"] == summ["sessions"] == days
    assert _get(client, "/api/gamma/SPY/summary?days=91")["data"]["stats"]["range"] == "3M"
    assert _get(client, "/api/gamma/SPY/summary?days=all")["data"]["stats"]["range"] == "All"


def _streak_by_hand(seq: list[bool]) -> tuple[str | None, int]:
    if not seq:
        return None, 0
    n = 1
    while n < len(seq) and seq[-n - 1] == seq[-1]:
        n += 1
    return ("W" if seq[-1] else "L"), n


def test_psychology_overview_and_patterns(built):
    db, client = built
    ov = _get(client, "/api/psychology/performance/overview?symbol=SPY")["data"]
    total, resolved, wins, conf = rows(db, "SELECT COUNT(*), COUNT(signal_correct), "
                                           "SUM(CASE WHEN signal_correct = 1 THEN 1 ELSE 0 END), AVG(confidence_score) "
                                           "FROM regime_signals WHERE symbol='SPY'")[0]
    assert ov["total_signals"] == total and ov["resolved"] == resolved and ov["wins"] == wins
    assert ov["win_rate"] == pytest.approx(100 * wins / resolved)
    assert ov["avg_confidence"] == pytest.approx(conf)
    seq = [bool(r[0]) for r in rows(db, "SELECT signal_correct FROM regime_signals WHERE symbol='SPY' "
                                        "AND signal_correct IS NOT NULL ORDER BY timestamp, id")]
    assert (ov["current_streak_type"], ov["current_streak"]) == _streak_by_hand(seq)
    assert (ov["longest_win_streak"], ov["longest_loss_streak"]) == stats.longest_streaks(seq)

    by = {p["pattern"]: p for p in _get(client, "/api/psychology/performance/by-pattern?symbol=SPY")["data"]}
    for name, want in pdata.EXPECTED.items():
        got = by[name]
        for key in ("signals", "wins", "losses", "win_rate", "avg_win", "avg_loss", "expectancy"):
            assert got[key] == (pytest.approx(want[key]) if want[key] is not None else None), (name, key)
    assert all(by[name]["avg_confidence"] is None for name in pdata.EXPECTED)  # under 10 earlier outcomes
    bull = by["TEST_BULL"]
    w = stats.wilson(2, 4)
    assert bull["win_rate_ci"] == [pytest.approx(w.low * 100), pytest.approx(w.high * 100)]

    sigs = _get(client, "/api/psychology/performance/signals?symbol=SPY&limit=3")["data"]
    want = rows(db, "SELECT timestamp, primary_regime_type, signal_correct FROM regime_signals WHERE symbol='SPY' "
                    "ORDER BY timestamp DESC, id DESC LIMIT 3")
    assert [(s["timestamp"], s["primary_regime_type"], s["signal_correct"]) for s in sigs] == want
    only_pin = _get(client, "/api/psychology/performance/signals?symbol=SPY&pattern=TEST_PIN")["data"]
    assert [s["signal_correct"] for s in only_pin] == [None, 1]  # newest first, by hand

    # Rolling win rate over the last N resolved signals, recomputed here from the rows.
    seq_rows = rows(db, "SELECT timestamp, signal_correct, confidence_score FROM regime_signals WHERE symbol='SPY' "
                        "AND signal_correct IS NOT NULL ORDER BY timestamp, id")
    body = _get(client, "/api/psychology/performance/chart-data?symbol=SPY&window=20")
    chart = body["data"]
    assert body["window"] == 20 and [p["timestamp"] for p in chart] == [r[0] for r in seq_rows]
    for i, p in enumerate(chart):
        last = seq_rows[max(0, i - 19):i + 1]
        assert p["cumulative_win_rate"] == pytest.approx(100 * sum(r[1] for r in seq_rows[:i + 1]) / (i + 1))
        if i < 19:
            assert p["win_rate"] is None and p["ci_low"] is None
            continue
        k = sum(r[1] for r in last)
        w = stats.wilson(k, 20)
        assert (p["window_wins"], p["window_n"]) == (k, 20)
        assert (p["win_rate"], p["ci_low"], p["ci_high"]) == pytest.approx((100 * k / 20, 100 * w.low, 100 * w.high))
        confs = [r[2] for r in last if r[2] is not None]
        assert p["window_avg_confidence"] == (pytest.approx(sum(confs) / len(confs)) if confs else None)
    assert any(p["win_rate"] is not None for p in chart)
    assert _get(client, "/api/psychology/performance/chart-data?symbol=SPY&window=7", 400)["success"] is False

    # Calibration: resolved signals per confidence bucket, by hand.
    cal = {b["bucket"]: b for b in _get(client, "/api/psychology/performance/calibration?symbol=SPY")["data"]}
    edges = [(0, 30), (30, 40), (40, 50), (50, 60), (60, 70), (70, 80), (80, 100)]
    for lo, hi in edges:
        mine = [r for r in seq_rows if r[2] is not None and lo <= r[2] and (r[2] < hi or (hi == 100 and r[2] <= 100))]
        b = cal[f"{lo}–{hi}%"]
        assert (b["resolved"], b["wins"]) == (len(mine), sum(r[1] for r in mine))
    unrated = [r for r in seq_rows if r[2] is None]
    assert (cal["no confidence"]["resolved"], cal["no confidence"]["wins"]) == (len(unrated), sum(r[1] for r in unrated))
    assert sum(b["resolved"] for b in cal.values()) == resolved


def test_probability_patterns_regimes_and_latest(built):
    db, client = built
    pats = {p["pattern"]: p for p in _get(client, "/api/probability/patterns?symbol=SPY")["data"]}
    for name, want in pdata.EXPECTED.items():
        got = pats[name]
        for key in ("up_1d", "up_5d", "up_10d", "down_10d"):
            side, h = key.split("_")
            o = got["moves"][h][side]
            w = stats.wilson(*want[key])
            assert (o["k"], o["n"]) == want[key], (name, key)
            assert (o["ci_low"], o["ci_high"]) == (pytest.approx(w.low * 100), pytest.approx(w.high * 100))
        assert got["correct"]["k"] == want["wins"] and got["correct"]["n"] == want["wins"] + want["losses"]

    # Regime odds, recomputed here from the close snapshot of every session.
    snaps = rows(db, "SELECT date, timestamp, regime, spot_price FROM gamma_history WHERE symbol='SPY' ORDER BY timestamp")
    close = {}
    for d, _, reg, spot in snaps:
        close[d] = (reg, spot)
    days = sorted(close)
    regimes = {r["regime"]: r for r in _get(client, "/api/probability/regimes?symbol=SPY")["data"]}
    for reg, got in regimes.items():
        idx = [i for i, d in enumerate(days) if close[d][0] == reg]
        assert got["sessions"] == len(idx)
        for h in (1, 5, 10):
            moves = [close[days[i + h]][1] - close[days[i]][1] for i in idx if i + h < len(days)]
            o = got["moves"][f"{h}d"]
            assert o["up"]["n"] == len(moves) and o["up"]["k"] == sum(m > 0 for m in moves)
            assert o["down"]["k"] == sum(m < 0 for m in moves)
    assert set(regimes) <= {"POSITIVE", "NEGATIVE", "NEUTRAL"}
    # Signal correctness per regime: each signal counted under its session's close regime.
    sig = rows(db, "SELECT timestamp, signal_correct FROM regime_signals WHERE symbol='SPY' AND signal_correct IS NOT NULL")
    for reg, got in regimes.items():
        mine = [ok for ts, ok in sig if close[ts[:10]][0] == reg]
        assert (got["correct"]["k"], got["correct"]["n"]) == (sum(mine), len(mine))
    assert sum(r["correct"]["n"] for r in regimes.values()) == len(sig)
    assert sum(r["sessions"] for r in regimes.values()) == len(days)

    latest = _get(client, "/api/probability/latest?symbol=SPY")["data"]
    last_pattern = rows(db, "SELECT primary_regime_type FROM regime_signals WHERE symbol='SPY' "
                            "ORDER BY timestamp DESC, id DESC LIMIT 1")[0][0]
    assert latest["signal"]["primary_regime_type"] == last_pattern
    assert latest["pattern_odds"]["pattern"] == last_pattern
    ts = latest["signal"]["timestamp"]
    want_regime = rows(db, "SELECT regime FROM gex_history WHERE symbol='SPY' AND timestamp <= :t ORDER BY timestamp DESC",
                       t=ts)[0][0]
    assert latest["regime"] == want_regime and latest["regime_odds"]["regime"] == want_regime


def test_pages_show_the_databases_numbers(built):
    db, client = built
    html = _get(client, "/gex/history?symbol=SPY&days=30")
    body = _get(client, "/api/gex/history?symbol=SPY&days=30")
    avg = rows(db, "SELECT AVG(net_gex) FROM gex_history WHERE symbol='SPY' AND timestamp >= :a",
               a=f"{body['start']} 00:00:00")[0][0]
    assert re.search(r'data-testid="card-avg-gex"[^>]*>' + re.escape(fmt.money_short(avg)) + "<", html)
    assert 'data-testid="badge-synthetic"' in html and 'data-testid="badge-modelled"' in html
    assert "/static/plotly.min.js" in html and "cdn" not in html.lower()
    for url in ("/gamma?symbol=SPY", "/psychology/performance?symbol=SPY", "/probability?symbol=SPY",
                "/gex/history?symbol=spy&days=all", "/gamma?days=3650"):
        page = _get(client, url)
        assert "SYNTHETIC DATA" in page
    psy = _get(client, "/psychology/performance?symbol=SPY")
    assert 'data-pattern="TEST_BEAR"' in psy and "+1.33%" in psy  # expectancy of TEST_BEAR, by hand
    assert _get(client, "/", 200)  # redirects to /gex/history


def test_unknown_symbols_and_bad_parameters(built):
    _, client = built
    assert "unknown symbol" in _get(client, "/gex/history?symbol=ZZZZ", 404)
    assert _get(client, "/api/gex/history?symbol=ZZZZ", 404)["success"] is False
    assert _get(client, "/api/gamma/QQQ/history", 404)["detail"].startswith("unknown symbol")
    assert _get(client, "/api/gamma/%27%3B%20DROP/history", 404)["success"] is False
    assert _get(client, "/api/gex/history?days=-3", 400)["success"] is False
    assert _get(client, "/api/gex/history?start=yesterday", 400)["success"] is False
    assert _get(client, "/no/such/page", 404)


def test_server_is_read_only(built):
    db, client = built
    for url in ("/api/gex/history", "/gex/history", "/api/psychology/performance/signals"):
        assert client.post(url).status_code == 405
        assert client.delete(url).status_code == 405
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    engine = client.app.state.db.engine()
    with pytest.raises(DBAPIError):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM gex_history"))
    assert rows(db, "SELECT COUNT(*) FROM gex_history")[0][0] > 0


def test_plotly_is_served_from_the_installed_package(built):
    _, client = built
    r = client.get("/static/plotly.min.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/javascript")
    import plotly

    assert f"v{plotly.__version__}" in r.text[:2000] or "plotly.js v" in r.text[:2000]
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200


def test_empty_database_names_the_command(tmp_path, db_url):
    """The command shown fills the database this server reads: it carries the server's --db as pages name
    it (tests/test_pages_dbname.py): the file name, run from its folder, or the URL without its user."""
    from gexhistory.store.db import init_schema, open_engine
    from gexhistory.web.dbname import shown_db_arg

    if db_url.startswith("postgresql"):
        init_schema(open_engine(db_url))  # tables, no rows
    else:
        db_url = str(tmp_path / "none.db")  # a server given no file yet (the CLI refuses it; the app copes)
    shown = "none.db" if not db_url.startswith("postgresql") else shown_db_arg(db_url)
    assert "@" not in shown
    with TestClient(create_app(db_url)) as client:
        want = f"python backfill_historical_data.py --days 365 --db {shown}"
        for url in ("/gex/history", "/gex/profile", "/gamma", "/psychology/performance", "/probability"):
            page = _get(client, url)
            assert want in page and 'data-testid="empty-database"' in page
            assert f"gexhistory backfill --days 365 --symbols SPY,QQQ --db {shown}</code>" in page
        assert want in _get(client, "/api/gex/history", 404)["detail"]
    with TestClient(create_app(None)) as client:  # no --db: the backfill reads the same default
        assert _get(client, "/api/gex/history", 404)["detail"].endswith("`python backfill_historical_data.py --days 365`")
    assert not (tmp_path / "none.db").exists()  # serving never creates the file


def test_responses_are_gzipped(built):
    import plotly

    _, client = built
    js = client.get("/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    raw = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert js.headers["content-encoding"] == "gzip" and js.headers["vary"] == "Accept-Encoding"
    assert int(js.headers["content-length"]) < raw.stat().st_size / 3
    assert js.content == raw.read_bytes()  # httpx decodes it: the same bytes
    plain = client.get("/static/plotly.min.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == raw.read_bytes()
    for url in ("/api/gex/history?days=all", "/gex/history?days=all"):
        r = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip", url
        assert int(r.headers["content-length"]) < len(r.content) / 3, url  # sent size vs decoded size


# EXPLAIN QUERY PLAN is SQLite's; the PostgreSQL planner picks seq scans on tables this small.
@pytest.mark.parametrize("built", ["sqlite"], indirect=True)
def test_page_queries_use_the_indexes(built):
    """EXPLAIN QUERY PLAN of every statement the four pages run: no full scan of a history table."""
    db, client = built
    from sqlalchemy import event

    engine = client.app.state.db.engine()
    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        for url in ("/gex/history?days=all", "/gex/history", "/gamma?days=all", "/psychology/performance", "/probability",
                    "/api/gamma/SPY/history?days=all", "/api/gex/history?days=all&max_points=40",
                    "/api/gamma/SPY/history?days=all&max_points=40", "/api/gex/profile/sessions"):
            assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    tables = "gex_history|gamma_history|gamma_daily_summary|regime_signals"
    checked = 0
    with engine.connect() as conn:
        for stmt, params in seen:
            if not re.search(rf"\b({tables})\b", stmt):
                continue
            plan = [r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + stmt, params)]
            checked += 1
            for line in plan:
                full_scan = re.search(rf"\bSCAN ({tables})\b", line)
                # The one exception: the symbol list reads the (symbol, date) index, never the table.
                if full_scan and not ("SELECT DISTINCT gamma_daily_summary.symbol" in stmt and "COVERING INDEX" in line):
                    raise AssertionError(f"full scan in {line!r} for {stmt}")
                if "SEARCH" in line:
                    assert "USING" in line, line
    assert checked >= 20


def test_profile_that_cannot_be_rebuilt_says_why(built, monkeypatch):
    from gexhistory.errors import WorkFailed
    from gexhistory.web import profile as web_profile

    db, client = built

    def gone(*args, **kwargs):
        raise WorkFailed("the daily bars of SPY (polygon) are not stored through 2025-06-02")

    monkeypatch.setattr(web_profile, "strike_profile", gone)
    body = _get(client, "/api/gex/profile?symbol=SPY", 503)
    assert body["success"] is False and body["detail"].startswith("the daily bars of SPY")
    assert "are not stored through" in _get(client, "/gex/profile?symbol=SPY", 503)
    steps = _get(client, "/api/gex/profile/sessions?symbol=SPY")
    closes = rows(db, "SELECT date, MAX(timestamp) FROM gamma_history WHERE symbol='SPY' GROUP BY date ORDER BY date")
    assert [s["timestamp"] for s in steps["data"]] == [c[1] for c in closes] and steps["count"] == len(closes)
