"""`gexhistory snapshot --source cboe`: Cboe's delayed-quotes JSON, in its published shape, served from
127.0.0.1; the stored snapshot (net GEX, flip, walls) checked against an independent computation, the
stored chain against the quotes, and every fault (unknown symbol, 5xx, not JSON, missing fields, an
empty chain, no server) one clear line with nothing written."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from scipy.optimize import brentq

from gexhistory.calendar import ET
from helpers import contract_rows, rows, run_cli

SPOT = 6010.25
STAMP = "2025-06-10 11:07:42"  # a Tuesday, mid-session
AT = dt.datetime(2025, 6, 10, 11, 7, tzinfo=ET)
R, Q = 0.04, 0.013  # the default conventions
PATH = "/api/global/delayed_quotes/options/{}.json"


def _osi(root: str, expiry: str, right: str, strike: float) -> str:
    return f"{root}{expiry[2:4]}{expiry[5:7]}{expiry[8:10]}{right}{round(strike * 1000):08d}"


def _bs_price(s, k, t, iv, right):
    n = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    d1 = (math.log(s / k) + (R - Q + iv * iv / 2) * t) / (iv * math.sqrt(t))
    d2 = d1 - iv * math.sqrt(t)
    call = s * math.exp(-Q * t) * n(d1) - k * math.exp(-R * t) * n(d2)
    return call if right == "C" else call - s * math.exp(-Q * t) + k * math.exp(-R * t)


def _years(expiry: str, at_open: bool = False) -> float:
    """Years from the quotes to the expiration: its 16:00 close, or its 09:30 open for an AM-settled
    root (the standard SPX monthly settles on the opening prints)."""
    end = dt.datetime.combine(dt.date.fromisoformat(expiry), dt.time(9, 30) if at_open else dt.time(16), tzinfo=ET)
    return (end - AT).total_seconds() / (365 * 86400)


def _contract(root, expiry, right, strike, oi, iv, **extra) -> dict:
    """One entry of data.options with every field Cboe publishes; bid/ask around the Black-Scholes price."""
    price = _bs_price(SPOT, strike, _years(expiry), iv, right)
    c = {"option": _osi(root, expiry, right, strike), "bid": round(price * 0.99, 2), "bid_size": 10,
         "ask": round(price * 1.01, 2), "ask_size": 12, "iv": iv, "open_interest": oi, "volume": 57,
         "delta": 0.5 if right == "C" else -0.5, "gamma": 0.0011, "vega": 3.2, "theta": -1.1, "rho": 0.4,
         "theo": round(price, 4), "change": 0.3, "open": price, "high": price, "low": price, "tick": "up",
         "last_trade_price": round(price, 2), "last_trade_time": "2025-06-10T10:52:13", "percent_change": 1.2,
         "prev_day_close": round(price * 0.98, 2)}
    c.update(extra)
    return c


def spx_options() -> list[dict]:
    """Weeklies (SPXW), the June monthly under both roots (SPX and SPXW on 2025-06-20, same IVs), a
    December expiry beyond the 120-day window, and the quirks: an IV of 0 with a bid/ask (derived from
    the mid), one with no bid (left out), an adjusted root (left out), a null OI, a non-OSI symbol."""
    out = []
    for expiry, roots in (("2025-06-13", ("SPXW",)), ("2025-06-20", ("SPX", "SPXW")), ("2025-07-18", ("SPXW",)),
                          ("2025-12-19", ("SPX",))):
        for i, strike in enumerate(range(5800, 6225, 25)):
            iv = 0.14 + 0.0002 * (SPOT - strike) + 0.01 * (expiry > "2025-06-30")
            put_oi = 900 + 4000 * (strike < 5950) + 37 * i
            call_oi = 700 + 3000 * (strike > 6075) + 11 * i
            for root in roots:
                out.append(_contract(root, expiry, "C", strike, call_oi, round(iv, 4)))
                out.append(_contract(root, expiry, "P", strike, put_oi, round(iv + 0.02, 4)))
    out[5]["iv"] = 0  # Cboe quoted no IV: derived from the bid/ask mid
    out[9].update(iv=0, bid=0, ask=0)  # no IV and no quote: left out
    out.append(_contract("SPX1", "2025-06-20", "C", 6000, 400, 0.15))  # adjusted: left out
    out.append(_contract("SPXW", "2025-06-13", "C", 6030, None, 0.15))  # no OI: left out
    out.append(_contract("SPXW", "2025-06-13", "C", 6040, 100, 0.15, option="SPXW 2506 BAD"))  # not OSI
    return out


def payload(options=None, **data) -> dict:
    body = {"symbol": "_SPX", "security_type": "index", "current_price": SPOT, "price_change": 12.4,
            "price_change_percent": 0.21, "bid": SPOT - 0.3, "ask": SPOT + 0.3, "open": 5998.1, "high": 6014.9,
            "low": 5991.0, "close": SPOT, "prev_day_close": 5997.8, "volume": 0, "iv30": 14.9, "seqno": 1,
            "last_trade_time": "2025-06-10T11:07:40", "options": spx_options() if options is None else options}
    body.update(data)
    return {"timestamp": STAMP, "data": body}


def expected(options: list[dict]):
    """(net GEX, flip, call wall, put wall, contracts kept) written out from the quotes: IV quoted, else
    from the mid by Brent's method; contracts within 0 < T <= 121/365 years; textbook gamma."""
    kept = []
    for c in options:
        root, ymd, right, k = c["option"][:-15], c["option"][-15:-9], c["option"][-9], c["option"][-8:]
        if not root.isalpha() or not c["open_interest"]:
            continue
        expiry = f"20{ymd[:2]}-{ymd[2:4]}-{ymd[4:]}"
        strike, t = int(k) / 1000, _years(expiry, at_open=root == "SPX")
        iv = c["iv"]
        if not iv:
            if not c["bid"] > 0:
                continue
            mid = (c["bid"] + c["ask"]) / 2
            iv = brentq(lambda v: _bs_price(SPOT, strike, t, v, right) - mid, 0.01, 5.0, xtol=1e-14)
        if 0 < t <= 121 / 365:
            kept.append((strike, t, iv, c["open_interest"], 1 if right == "C" else -1))

    def net(s):
        total = 0.0
        for strike, t, iv, oi, sign in kept:
            d1 = (math.log(s / strike) + (R - Q + iv * iv / 2) * t) / (iv * math.sqrt(t))
            gamma = math.exp(-Q * t) * math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) / (s * iv * math.sqrt(t))
            total += sign * gamma * oi * 100 * s * s * 0.01
        return total

    grid = [SPOT * (0.8 + 0.4 * i / 4000) for i in range(4001)]
    values = [net(s) for s in grid]
    roots = [brentq(net, a, b, xtol=1e-9) for a, b, fa, fb in zip(grid, grid[1:], values, values[1:]) if fa * fb < 0]
    flip = min(roots, key=lambda x: abs(x - SPOT)) if roots else None
    by_strike: dict[tuple[float, int], float] = {}
    for strike, t, iv, oi, sign in kept:
        d1 = (math.log(SPOT / strike) + (R - Q + iv * iv / 2) * t) / (iv * math.sqrt(t))
        gamma = math.exp(-Q * t) * math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) / (SPOT * iv * math.sqrt(t))
        by_strike[(strike, sign)] = by_strike.get((strike, sign), 0.0) + gamma * oi * 100 * SPOT * SPOT * 0.01
    call_wall = max((k for k, s in by_strike if s > 0 and k >= SPOT), key=lambda k: by_strike[(k, 1)])
    put_wall = max((k for k, s in by_strike if s < 0 and k <= SPOT), key=lambda k: by_strike[(k, -1)])
    return net(SPOT), flip, call_wall, put_wall


@pytest.fixture
def cboe(httpserver, monkeypatch):
    httpserver.expect_request(PATH.format("_SPX")).respond_with_json(payload())
    spy = payload([_contract("SPY", "2025-06-20", r, k, 1000, 0.15) for k in range(595, 606) for r in "CP"],
                  symbol="SPY", current_price=600.5)
    httpserver.expect_request(PATH.format("SPY")).respond_with_json(spy)
    for name, status in (("NOPE", 404), ("GONE", 403)):
        httpserver.expect_request(PATH.format(name)).respond_with_data("<Error>AccessDenied</Error>", status=status)
    base = httpserver.url_for("").rstrip("/")
    for var, value in (("CBOE_BASE_URL", base), ("CBOE_MAX_TRIES", "2"), ("CBOE_BACKOFF_SECONDS", "0")):
        monkeypatch.setenv(var, value)
    return {"base": base, "server": httpserver, "env": {"CBOE_BASE_URL": base, "CBOE_MAX_TRIES": "2",
                                                         "CBOE_BACKOFF_SECONDS": "0"}}


def test_cboe_snapshot_matches_independent_computation(cboe, db_url):
    from gexhistory.pipeline.cboe_snapshot import run_cboe_snapshot

    done, failed = run_cboe_snapshot(["SPX"], db_url)
    assert failed == [] and len(done) == 1
    res = done[0]
    assert (res.symbol, res.timestamp, res.quotes_at) == ("SPX", "2025-06-10 11:07:00", "2025-06-10 11:07:42")
    net, flip, call_wall, put_wall = expected(spx_options())
    stored = rows(db_url, "SELECT timestamp, spot_price, net_gex, call_gex, put_gex, flip_point, call_wall, put_wall, "
                          "data_source, chain_source FROM gex_history WHERE symbol = 'SPX'")
    assert len(stored) == 1
    ts, spot, got_net, call_gex, put_gex, got_flip, got_cw, got_pw, data_source, chain_source = stored[0]
    assert (ts, spot, data_source, chain_source) == ("2025-06-10 11:07:00", SPOT, "cboe", "cboe_delayed")
    assert got_net == pytest.approx(net, rel=1e-9) and got_net == pytest.approx(call_gex + put_gex)
    assert flip is not None and got_flip == pytest.approx(flip, abs=1e-4)
    assert (got_cw, got_pw) == (call_wall, put_wall)
    assert rows(db_url, "SELECT COUNT(*), MIN(chain_source) FROM gamma_history WHERE symbol = 'SPX'") == [
        (1, "cboe_delayed")]

    # The whole chain is stored: SPX (AM-settled) and SPXW of 2025-06-20 are two contracts, the SPX one
    # kept in the SPXW one's row (the table's key has no root).
    header = rows(db_url, "SELECT as_of, chain_source, format, file_spot, contracts, notes FROM option_chains")
    assert len(header) == 1 and header[0][:4] == ("2025-06-10", "cboe_delayed", "cboe_delayed_json", SPOT)
    notes = json.loads(header[0][5])
    for note in ("1 contract without an OSI option symbol left out", "1 contract of adjusted roots",
                 "1 contract without open interest left out", "1 contract without an IV", "1 IV from the bid/ask mid"):
        assert any(n.startswith(note) for n in notes), (note, notes)
    assert not any("merged" in n for n in notes)
    n_strikes = len(range(5800, 6225, 25))
    # five (root, expiry) pairs, calls and puts, one left out for want of an IV
    assert header[0][4] == 5 * 2 * n_strikes - 1
    june = contract_rows(db_url, "SELECT open_interest, expires_at_open, open_interest_at_open FROM option_chain_contracts "
                        "WHERE expiration = '2025-06-20' AND strike = 5900 AND \"right\" = 'P'")
    assert [(oi, bool(am), oi_am) for oi, am, oi_am in june] == [(900 + 4000 + 37 * 4, False, 900 + 4000 + 37 * 4)]
    assert contract_rows(db_url, "SELECT COUNT(*) FROM option_chain_contracts WHERE iv_source = 'p'") == [(1,)]
    assert res.used == header[0][4] and res.contracts == len(spx_options()) and res.no_iv == 1

    # The profile page rebuilds the snapshot from the stored chain: the same figures.
    from gexhistory.pipeline.profile import strike_profile

    prof = strike_profile("SPX", db=db_url)
    assert (prof.chain_source, prof.data_source, prof.timestamp, prof.notes) == (
        "cboe_delayed", "cboe", "2025-06-10 11:07:00", [])
    assert prof.profile.snapshot.net_gex == pytest.approx(got_net, rel=1e-9)
    assert prof.profile.snapshot.flip_point == pytest.approx(got_flip, rel=1e-9)

    # The same quotes again: their rows replaced, nothing duplicated.
    again, _ = run_cboe_snapshot(["SPX"], db_url)
    assert again[0].replaced == 2
    for table, n in (("gex_history", 1), ("gamma_history", 1), ("option_chains", 1)):
        assert rows(db_url, f"SELECT COUNT(*) FROM {table}") == [(n,)]
    assert contract_rows(db_url, "SELECT COUNT(*) FROM option_chain_contracts") == [(header[0][4] - 2 * n_strikes,)]


@pytest.mark.parametrize("stamp, expected_ts", [
    ("2025-06-10 09:30:05", "2025-06-10 09:30:00"),  # the open
    ("2025-06-10 16:14:59", "2025-06-10 16:00:00"),  # after the close: the session's close
    ("2025-06-14 12:00:00", "2025-06-13 16:00:00"),  # Saturday: Friday's close
    ("2025-06-16 08:00:00", "2025-06-13 16:00:00"),  # Monday before the open: Friday's close
    ("2025-07-03 15:00:00", "2025-07-03 13:00:00"),  # an early close
    ("2025-06-10T15:07:42+00:00", "2025-06-10 11:07:00"),  # an explicit offset is honoured
])
def test_snapshot_time_comes_from_the_quotes(stamp, expected_ts):
    from gexhistory.calendar import format_ts
    from gexhistory.pipeline.cboe_snapshot import snapshot_time
    from gexhistory.sources.cboe_delayed import parse_timestamp

    session, at = snapshot_time(parse_timestamp(stamp))
    assert format_ts(at) == expected_ts and session.date.isoformat() == expected_ts[:10]


def test_keyless_cli_several_symbols(cboe, tmp_path):
    out = run_cli(["snapshot", "--source", "cboe", "--symbols", "SPX,SPY", "--db", "g.db"], tmp_path, env=cboe["env"])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("SPX 2025-06-10 11:07:00 ET: spot 6010.25, net GEX ")
    assert "(cboe_delayed, quotes of 2025-06-10 11:07:42)" in lines[0]
    assert any(line.startswith("SPY 2025-06-10 11:07:00 ET: spot 600.50") for line in lines)
    assert rows(str(tmp_path / "g.db"), "SELECT symbol, data_source FROM gex_history ORDER BY symbol") == [
        ("SPX", "cboe"), ("SPY", "cboe")]


def _serve(cboe, body=None, status=200, content_type="application/json"):
    cboe["server"].clear()
    text = body if isinstance(body, str) else json.dumps(body)
    cboe["server"].expect_request(PATH.format("_SPX")).respond_with_data(text, status=status, content_type=content_type)


@pytest.mark.parametrize("case, code, message", [
    ("unknown_404", 2, "error: Cboe publishes no delayed quotes for NOPE (HTTP 404"),
    ("unknown_403", 2, "error: Cboe publishes no delayed quotes for GONE (HTTP 403"),
    ("http_500", 1, "error: cboe: SPX: HTTP 500 after 2 tries"),
    ("not_json", 1, "error: cboe: SPX: the answer is not JSON (cut short, or an error page) after 2 tries"),
    ("no_price", 1, "error: cboe: the SPX answer"),
    ("empty_chain", 1, "error: cboe: the SPX answer"),
    ("missing_iv_field", 1, "error: cboe: the SPX answer"),
    ("no_timestamp", 1, "error: cboe: the SPX answer"),
    ("no_server", 1, "error: cboe: SPX: ConnectError"),
])
def test_faults_are_one_line_and_write_nothing(cboe, tmp_path, case, code, message):
    symbol, env = "SPX", dict(cboe["env"])
    if case.startswith("unknown"):
        symbol = "NOPE" if case.endswith("404") else "GONE"
    elif case == "http_500":
        _serve(cboe, {"error": "boom"}, status=500)
    elif case == "not_json":
        _serve(cboe, '{"timestamp": "2025-06-10 11:07:42", "data": {"opt', content_type="text/html")
    elif case == "no_price":
        _serve(cboe, payload(current_price=None))
    elif case == "empty_chain":
        _serve(cboe, payload([]))
    elif case == "missing_iv_field":
        opts = spx_options()
        del opts[3]["iv"]
        _serve(cboe, payload(opts))
    elif case == "no_timestamp":
        _serve(cboe, {"data": payload()["data"]})
    elif case == "no_server":
        env["CBOE_BASE_URL"] = "http://127.0.0.1:9"  # discard port: nothing listens
    out = run_cli(["snapshot", "--source", "cboe", "--symbols", symbol, "--db", "g.db"], tmp_path, env=env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code and len(lines) == 1 and lines[0].startswith(message), out.stderr
    assert "Traceback" not in out.stdout + out.stderr and out.stdout == ""
    assert not (tmp_path / "g.db").exists()


def test_unknown_symbol_among_others_writes_nothing(cboe, tmp_path):
    out = run_cli(["snapshot", "--source", "cboe", "--symbols", "SPX,NOPE", "--db", "g.db"], tmp_path, env=cboe["env"])
    assert out.returncode == 2 and out.stderr.strip().endswith("nothing was written")
    assert not (tmp_path / "g.db").exists()


def test_one_failing_symbol_costs_the_others_nothing(cboe, tmp_path):
    cboe["server"].clear()
    cboe["server"].expect_request(PATH.format("_SPX")).respond_with_json(payload())
    cboe["server"].expect_request(PATH.format("SPY")).respond_with_data("busy", status=503)
    out = run_cli(["snapshot", "--source", "cboe", "--symbols", "SPX,SPY", "--json", "--db", "g.db"], tmp_path,
                  env=cboe["env"])
    assert out.returncode == 1
    summary = json.loads(out.stdout)
    assert [s["symbol"] for s in summary["snapshots"]] == ["SPX"]
    assert summary["failed"] == [{"symbol": "SPY", "error": "cboe: SPY: HTTP 503 after 2 tries "
                                  f"({cboe['base']}{PATH.format('SPY')})"}]
    assert rows(str(tmp_path / "g.db"), "SELECT DISTINCT symbol FROM gex_history") == [("SPX",)]


def test_backfill_keeps_cboe_snapshots_and_status_counts_real_sessions(cboe, tmp_path):
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
    from gexhistory.pipeline.cboe_snapshot import run_cboe_snapshot

    db = str(tmp_path / "g.db")
    run_cboe_snapshot(["SPX"], db)
    live = rows(db, "SELECT net_gex FROM gex_history WHERE chain_source = 'cboe_delayed'")
    for force in (False, True):
        run_backfill(BackfillOptions(["SPX"], dt.date(2025, 6, 9), dt.date(2025, 6, 11), source="synthetic",
                                     db=db, force=force))
        day = rows(db, "SELECT timestamp, chain_source, net_gex FROM gex_history WHERE timestamp LIKE '2025-06-10%' "
                       "ORDER BY timestamp")
        assert [(t[11:16], c) for t, c, _ in day] == [("09:30", "modelled"), ("11:07", "cboe_delayed"),
                                                      ("12:30", "modelled"), ("15:00", "modelled"),
                                                      ("16:00", "modelled")]
        assert day[1][2] == live[0][0]
    out = run_cli(["status", "--json", "--db", db], tmp_path)
    assert out.returncode == 0, out.stderr
    spx = json.loads(out.stdout)["symbols"][0]
    assert spx["symbol"] == "SPX" and spx["real_chain_sessions"] == 1
    assert {t["table"]: t["real_chain_sessions"] for t in spx["tables"]}["gex_history"] == 1
    table = run_cli(["status", "--db", db], tmp_path, env={"COLUMNS": "200"})
    assert table.returncode == 0 and "real-chain sessions" in table.stdout
    assert "SPX: 1 session with a real option chain" in table.stdout


def test_the_keyless_schedule_runs_as_written(cboe, tmp_path):
    """`schedule` without a key emits `snapshot --source cboe ...`: run its crontab line as cron would."""
    import shlex
    import subprocess
    import sys

    from helpers import REPO

    project = tmp_path / "proj"
    project.mkdir()
    out = run_cli(["schedule", "--project-dir", str(project), "--python", sys.executable, "--symbols", "SPX,SPY"],
                  tmp_path)
    assert out.returncode == 0, out.stderr
    cron = [line for line in out.stdout.splitlines() if " snapshot " in line and line[:1].isdigit()]
    assert len(cron) == 4 and cron[-1].startswith("20 16 * * 1-5 ")  # 09:30, 10-15h, 16:00, then 16:20
    command = cron[0].split(None, 5)[5]
    assert shlex.split(command)[3:] == [sys.executable, "-m", "gexhistory", "snapshot", "--source", "cboe",
                                        "--symbols", "SPX,SPY", "--quiet"]
    env = {k: v for k, v in __import__("os").environ.items() if not k.endswith("_API_KEY")}
    job = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300,
                         env={**env, **cboe["env"], "PYTHONPATH": str(REPO / "src")})
    assert job.returncode == 0 and job.stdout == "" and job.stderr == "", job.stderr
    assert rows(str(project / "gex_copilot.db"), "SELECT symbol, chain_source FROM gex_history ORDER BY symbol") == [
        ("SPX", "cboe_delayed"), ("SPY", "cboe_delayed")]


def test_symbols_as_cboe_files_them():
    from gexhistory.sources.cboe_delayed import cboe_symbol, stored_symbol

    assert [cboe_symbol(s) for s in ("SPX", "I:SPX", "_ndx", "SPY", "BRK.B", "VIX")] == [
        "_SPX", "_SPX", "_NDX", "SPY", "BRK.B", "_VIX"]
    assert [stored_symbol(s) for s in ("I:SPX", "_RUT", "qqq")] == ["SPX", "RUT", "QQQ"]


def test_snapshot_time_is_the_last_session_moment_at_or_before_the_quotes():
    """Property: the snapshot lies in a session, at or before the quotes' time, and no session moment
    falls between the two (beyond the minute the snapshot is floored to)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from gexhistory.calendar import sessions_between
    from gexhistory.pipeline.cboe_snapshot import snapshot_time

    start = dt.datetime(2024, 1, 2, tzinfo=ET)

    @settings(max_examples=300, deadline=None)
    @given(st.integers(0, 700 * 86400))
    def check(offset):
        stamp = start + dt.timedelta(seconds=offset)
        session, at = snapshot_time(stamp)
        assert session.open <= at <= session.close and at <= stamp and at.second == 0
        after = session.date + dt.timedelta(days=1)
        later = [s for s in sessions_between(after, stamp.date()) if s.open <= stamp] if after <= stamp.date() else []
        assert later == [] and (stamp - at < dt.timedelta(minutes=1) or at == session.close)

    check()


def test_roots_merge_into_one_contract_per_strike():
    """Property: after the merge each (expiry, settlement, strike, right) appears once: roots that
    settle alike (SPXW, SPXPM: at the close) merge, OI the sum over them and the IV between theirs,
    while the AM-settled SPX monthly stays a contract of its own, timed to the open."""
    import numpy as np
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from gexhistory.calendar import session_on
    from gexhistory.engine.exposure import Conventions
    from gexhistory.pipeline.cboe_snapshot import build_chain
    from gexhistory.sources.cboe_delayed import CboeQuotes

    session = session_on(dt.date(2025, 6, 10))
    contract = st.tuples(st.sampled_from(["SPX", "SPXW", "SPXPM"]), st.sampled_from(["2025-06-20", "2025-07-18"]),
                         st.sampled_from([5900.0, 6000.0, 6100.0]), st.booleans(), st.integers(0, 5000),
                         st.floats(0.05, 1.5))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(contract, min_size=1, max_size=40, unique_by=lambda c: c[:4]))
    def check(contracts):
        root, expiry, strike, is_call, oi, iv = (np.array(x) for x in zip(*contracts))
        n = len(contracts)
        q = CboeQuotes("SPX", "test", AT, SPOT, n, 0, root.astype(object), expiry.astype("datetime64[D]"),
                       strike.astype(float), is_call.astype(bool), oi.astype(float), iv.astype(float),
                       np.full(n, 1.0), np.full(n, 1.2), np.full(n, np.nan))
        chain, _src, _notes, no_iv = build_chain(q, session, AT, Conventions())
        assert no_iv == 0
        closes = {e: dt.datetime.combine(dt.date.fromisoformat(e), dt.time(16), tzinfo=ET).timestamp()
                  for e in ("2025-06-20", "2025-07-18")}
        keys = list(zip(chain.expiry.astype(str), chain.expiry_close, chain.strike, chain.is_call))
        assert len(keys) == len(set(keys))
        for (e, close, k, c), got_oi, got_iv in zip(keys, chain.open_interest, chain.iv):
            am = close < closes[e]
            assert close == closes[e] - (6.5 * 3600 if am else 0)  # an AM contract ends at the open
            mine = [(o, v) for r, e2, k2, c2, o, v in contracts if (e2, k2, c2) == (e, k, c) and (r == "SPX") == am]
            assert got_oi == sum(o for o, _ in mine)
            assert min(v for _, v in mine) - 1e-12 <= got_iv <= max(v for _, v in mine) + 1e-12

    check()
