"""`gexhistory snapshot`: a live chain from a local server shaped like Massive's chain snapshot endpoint
(two pages), through the engine, stored for the minute it was taken; net GEX checked independently."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from gexhistory.calendar import ET
from helpers import rows, run_cli

NOW = dt.datetime(2025, 6, 10, 11, 7, 42, tzinfo=ET)
SPOT = 600.12
EXPIRIES = ["2025-06-13", "2025-06-20", "2025-07-18", "2025-12-19"]  # the last is beyond the 120-day window
KEY = "testkey_abc123"


def _contract(kind: str, expiry: str, strike: float, i: int) -> dict:
    oi = 500 + (i * 37) % 900
    iv = 0.16 + 0.0004 * (SPOT - strike) + (0.02 if kind == "put" else 0.0)
    c = {
        "break_even_price": strike + 2.0,
        "day": {"close": 2.0, "volume": 10},
        "details": {"contract_type": kind, "exercise_style": "american", "expiration_date": expiry,
                    "shares_per_contract": 100, "strike_price": strike,
                    "ticker": f"O:SPY{expiry[2:4]}{expiry[5:7]}{expiry[8:]}{kind[0].upper()}{int(strike * 1000):08d}"},
        "greeks": {"delta": 0.5, "gamma": 0.01, "theta": -0.1, "vega": 0.2},
        "implied_volatility": iv,
        "open_interest": oi,
        "underlying_asset": {"change_to_break_even": 1.0, "last_updated": 1749568062000000000,
                             "price": SPOT, "ticker": "SPY", "timeframe": "REAL-TIME"},
    }
    if i == 7:
        del c["implied_volatility"]  # no quote: cannot be given a gamma
    if i == 11:
        c["open_interest"] = 0
    return c


def _chain() -> list[dict]:
    out, i = [], 0
    for expiry in EXPIRIES:
        for strike in range(580, 625, 5):
            for kind in ("call", "put"):
                out.append(_contract(kind, expiry, float(strike), i))
                i += 1
    return out


def _expected_net_gex(contracts: list[dict], at: dt.datetime, r=0.04, q=0.013, window_days=120) -> float:
    """Black-Scholes gamma x OI x 100 x S^2 x 1%, calls +, puts -, written out independently."""
    total = 0.0
    for c in contracts:
        d = c["details"]
        iv = c.get("implied_volatility")
        if iv is None or not c["open_interest"]:
            continue
        close = dt.datetime.combine(dt.date.fromisoformat(d["expiration_date"]), dt.time(16), tzinfo=ET)
        t = (close - at).total_seconds() / (365 * 86400)
        if not 0 < t <= (window_days + 1) / 365:
            continue
        d1 = (math.log(SPOT / d["strike_price"]) + (r - q + iv * iv / 2) * t) / (iv * math.sqrt(t))
        gamma = math.exp(-q * t) * math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) / (SPOT * iv * math.sqrt(t))
        sign = 1 if d["contract_type"] == "call" else -1
        total += sign * gamma * c["open_interest"] * 100 * SPOT * SPOT * 0.01
    return total


@pytest.fixture
def massive(httpserver, monkeypatch):
    contracts = _chain()
    half = len(contracts) // 2
    base = httpserver.url_for("").rstrip("/")
    page1 = {"status": "OK", "request_id": "r1", "results": contracts[:half],
             "next_url": f"{base}/v3/snapshot/options/SPY?cursor=page2"}
    page2 = {"status": "OK", "request_id": "r2", "results": contracts[half:]}
    auth = {"Authorization": f"Bearer {KEY}"}
    httpserver.expect_request("/v3/snapshot/options/SPY", query_string={"limit": "250"}, headers=auth).respond_with_json(page1)
    httpserver.expect_request("/v3/snapshot/options/SPY", query_string={"cursor": "page2"}, headers=auth).respond_with_json(page2)
    httpserver.expect_request("/v3/snapshot/options/NOPE").respond_with_json(
        {"status": "NOT_FOUND", "request_id": "r3", "message": "ticker not found"}, status=404)
    for var in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "MASSIVE_RATE_PER_MIN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POLYGON_API_KEY", KEY)
    monkeypatch.setenv("MASSIVE_BASE_URL", base)
    monkeypatch.setenv("MASSIVE_MAX_TRIES", "1")
    return {"contracts": contracts, "base": base, "server": httpserver}


def test_snapshot_net_gex_matches_independent_computation(massive, db_url):
    from gexhistory.pipeline.snapshot import run_snapshot

    done, failed = run_snapshot(["SPY"], db_url, now=NOW)
    assert failed == [] and len(done) == 1
    res = done[0]
    assert res.timestamp == "2025-06-10 11:07:00" and res.contracts == len(massive["contracts"]) and res.no_iv == 1
    expected = _expected_net_gex(massive["contracts"], NOW.replace(second=0))
    stored = rows(db_url, "SELECT timestamp, net_gex, spot_price, data_source, chain_source, call_gex, put_gex "
                          "FROM gex_history WHERE symbol='SPY'")
    assert len(stored) == 1
    ts, net, spot, data_source, chain_source, call_gex, put_gex = stored[0]
    assert (ts, spot, data_source, chain_source) == ("2025-06-10 11:07:00", SPOT, "polygon", "massive_snapshot")
    assert net == pytest.approx(expected, rel=1e-9) and net == pytest.approx(call_gex + put_gex)
    assert call_gex > 0 > put_gex
    g = rows(db_url, "SELECT date, time_of_day, net_gex, chain_source, implied_volatility FROM gamma_history")
    assert g == [("2025-06-10", "11:07", net, "massive_snapshot", pytest.approx(g[0][4]))] and 0.1 < g[0][4] < 0.3

    # Same minute again: replaced, not duplicated.
    again, _ = run_snapshot(["SPY"], db_url, now=NOW + dt.timedelta(seconds=10))
    assert again[0].replaced == 2
    assert rows(db_url, "SELECT COUNT(*) FROM gex_history")[0][0] == 1
    assert rows(db_url, "SELECT COUNT(*) FROM gamma_history")[0][0] == 1


def test_backfill_keeps_live_snapshots(massive, tmp_path):
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
    from gexhistory.pipeline.snapshot import run_snapshot

    db = str(tmp_path / "g.db")
    at = dt.datetime(2025, 6, 10, 12, 30, tzinfo=ET)  # one of the backfill's own snapshot times
    run_snapshot(["SPY"], db, now=at)
    live = rows(db, "SELECT net_gex FROM gex_history WHERE timestamp='2025-06-10 12:30:00'")
    for force in (False, True):
        run_backfill(BackfillOptions(["SPY"], dt.date(2025, 6, 9), dt.date(2025, 6, 11), source="synthetic",
                                     db=db, force=force))
        day = rows(db, "SELECT timestamp, chain_source, net_gex FROM gex_history WHERE timestamp LIKE '2025-06-10%' "
                       "ORDER BY timestamp")
        assert [(t[11:16], c) for t, c, _ in day] == [("09:30", "modelled"), ("12:30", "massive_snapshot"),
                                                      ("15:00", "modelled"), ("16:00", "modelled")]
        assert day[1][2] == live[0][0]
    out = run_cli(["status", "--check", "--db", db], tmp_path)
    assert out.returncode == 1 and "mixed_sources" in out.stdout  # a real snapshot among synthetic rows


def test_snapshot_cli(massive, tmp_path):
    env = {"POLYGON_API_KEY": KEY, "MASSIVE_BASE_URL": massive["base"], "MASSIVE_MAX_TRIES": "1"}
    out = run_cli(["snapshot", "--symbols", "SPY,NOPE", "--anytime", "--json", "--db", "g.db"], tmp_path, env=env)
    assert out.returncode == 1, out.stderr
    summary = json.loads(out.stdout)
    assert [s["symbol"] for s in summary["snapshots"]] == ["SPY"]
    assert summary["failed"][0]["symbol"] == "NOPE" and "404" in summary["failed"][0]["error"]
    assert KEY not in out.stdout + out.stderr
    assert out.stderr.strip().splitlines()[-1] == "error: 1 of 2 symbols failed (NOPE)"
    assert rows(str(tmp_path / "g.db"), "SELECT COUNT(*), MIN(chain_source) FROM gex_history") == [(1, "massive_snapshot")]
    plain = run_cli(["snapshot", "--anytime", "--db", "g.db"], tmp_path, env=env)
    assert plain.returncode == 0, plain.stderr
    line = plain.stdout.splitlines()[0]
    assert line.startswith("SPY ") and f"spot {SPOT:.2f}, net GEX " in line and "(massive_snapshot)" in line
    assert "note: 1 of 72 contracts had no implied volatility" in plain.stdout


def test_snapshot_without_key_is_bad_input(tmp_path):
    out = run_cli(["snapshot", "--anytime", "--db", "g.db"], tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: snapshot needs a Massive/Polygon API key")
    assert not (tmp_path / "g.db").exists()


def test_market_hours():
    from gexhistory.pipeline.snapshot import market_open_at

    assert market_open_at(NOW)
    assert market_open_at(dt.datetime(2025, 6, 10, 16, 10, tzinfo=ET))  # a late 16:00 job
    assert not market_open_at(dt.datetime(2025, 6, 10, 9, 29, tzinfo=ET))
    assert not market_open_at(dt.datetime(2025, 6, 14, 12, 0, tzinfo=ET))  # Saturday
    assert not market_open_at(dt.datetime(2025, 7, 4, 12, 0, tzinfo=ET))  # Independence Day
    assert not market_open_at(dt.datetime(2025, 7, 3, 13, 30, tzinfo=ET))  # early close at 13:00


def _spoil(path: tuple[str, ...], value):
    def apply(c: dict) -> None:
        node = c
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return apply


# (case, what is spoiled in the chain's third contract, the words of the one-line error)
IMPLAUSIBLE_CHAIN = [
    ("huge open interest", _spoil(("open_interest",), 1e15), "implausible open_interest 1e+15 (contract 3"),
    ("negative open interest", _spoil(("open_interest",), -5), "implausible open_interest -5 (contract 3"),
    ("huge strike", _spoil(("details", "strike_price"), 1e300), "implausible strike_price 1e+300 (contract 3"),
    ("zero strike", _spoil(("details", "strike_price"), 0), "implausible strike_price 0 (contract 3"),
    ("expiry in 9999", _spoil(("details", "expiration_date"), "9999-12-17"),
     "implausible expiration_date 9999-12-17 (contract 3"),
    ("absurd IV", _spoil(("implied_volatility",), 1e6), "implausible implied_volatility 1e+06 (contract 3"),
    ("huge underlying price", _spoil(("underlying_asset", "price"), 1e20), "implausible underlying price 1e+20"),
]


@pytest.mark.parametrize("case, spoil, words", IMPLAUSIBLE_CHAIN, ids=[c[0] for c in IMPLAUSIBLE_CHAIN])
def test_an_implausible_chain_is_refused_whole(case, spoil, words):
    from gexhistory.errors import WorkFailed
    from gexhistory.sources.massive_chain import chain_from_results

    results = _chain()
    spoil(results[2])
    with pytest.raises(WorkFailed) as err:
        chain_from_results("SPY", results, NOW.date())
    assert str(err.value).startswith("massive: the SPY chain snapshot has an ") and words in str(err.value)
