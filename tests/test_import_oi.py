"""`gexhistory import-oi`: Massive's daily open interest per contract (`/options/v1/open-interest`) from a
local server shaped as Massive documents it, priced on the model's IV surface and the real daily
closes, stored per session; the net GEX is checked against a computation written out here."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import pytest
from werkzeug import Response

from gexhistory.calendar import ET
from gexhistory.engine.params import ModelParams
from helpers import contract_rows, rows, run_cli

KEY = "oikey_7f3a9c"
# 2025-06-19 (Juneteenth) is a holiday: the OI the 20th uses is the 18th's.
SESSIONS = ["2025-06-17", "2025-06-18", "2025-06-20"]


def _closes() -> dict[str, float]:
    """Daily closes of I:SPX from 2025-02-03 on, alternating 6000 / 6060, so the 20-session realised vol
    is |ln(6060/6000)| x sqrt(252) whatever the session."""
    from gexhistory.calendar import sessions_between

    days = [s.date.isoformat() for s in sessions_between(dt.date(2025, 2, 3), dt.date(2025, 6, 30))]
    return {d: (6000.0 if k % 2 == 0 else 6060.0) for k, d in enumerate(days)}


CLOSES = _closes()


def _ticker(root: str, expiry: str, kind: str, strike: float) -> str:
    return f"O:{root}{expiry[2:4]}{expiry[5:7]}{expiry[8:]}{kind[0].upper()}{int(round(strike * 1000)):08d}"


def _contracts(day: str) -> dict[str, list[dict]]:
    """Per root: the records of session `day` (the OI at its end)."""
    out: dict[str, list[dict]] = {"SPX": [], "SPXW": []}
    plan = {"SPXW": ["2025-06-18", "2025-06-20", "2025-06-27", "2025-12-19"], "SPX": ["2025-06-20", "2025-07-18"]}
    for root, expiries in plan.items():
        for e, expiry in enumerate(expiries):
            for k, strike in enumerate(range(5800, 6300, 50)):
                for kind in ("call", "put"):
                    oi = 300 + (7 * k + 13 * e + (5 if kind == "put" else 0) + int(day[-2:])) % 40 * 50
                    if root == "SPXW" and expiry == "2025-06-27" and strike == 5900 and kind == "call":
                        oi = 0  # listed, nobody holds it
                    out[root].append({
                        "date": day, "ticker": _ticker(root, expiry, kind, strike), "underlying_ticker": "SPX",
                        "root": root, "contract_type": kind, "expiration_date": expiry,
                        "strike_price": strike, "open_interest": oi})
    return out


def _bars_handler(request):
    a, b = request.path.split("/")[-2:]
    results = []
    for d, c in sorted(CLOSES.items()):
        if a <= d <= b:
            t = int(dt.datetime.fromisoformat(d).replace(tzinfo=ET).timestamp() * 1000)
            results.append({"t": t, "o": c, "h": c + 5, "l": c - 5, "c": c, "v": 0, "n": 0})
    return Response(json.dumps({"ticker": "I:SPX", "status": "OK", "adjusted": True, "queryCount": len(results),
                                "resultsCount": len(results), "results": results, "request_id": "b1"}),
                    content_type="application/json")


def _oi_handler(mode: str, asked: list):
    def handle(request):
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return Response(json.dumps({"status": "ERROR", "message": "bad key"}), 401, content_type="application/json")
        q = request.args
        root, day = q.get("root"), q.get("date")
        asked.append((root, day, q.get("cursor")))
        if mode == "not_authorized":
            return Response(json.dumps({"status": "NOT_AUTHORIZED", "request_id": "x",
                                        "message": "You are not entitled to this data. Please upgrade your plan."}),
                            403, content_type="application/json")
        if mode == "fails_on_18th" and day == "2025-06-18":
            return Response(json.dumps({"status": "ERROR", "request_id": "x", "message": "upstream"}), 502,
                            content_type="application/json")
        if mode == "no_history" or (mode == "first_missing" and day == "2025-06-16"):
            return Response(json.dumps({"status": "OK", "request_id": "e", "results": []}),
                            content_type="application/json")
        served = "2025-06-13" if mode == "ignores_date" else day
        records = _contracts(served)["SPXW" if mode == "ignores_root" else root]
        if mode == "ignores_date":
            records = [dict(r, date=served) for r in records]
        half = len(records) // 2
        if q.get("cursor") == "p2":
            body = {"status": "OK", "request_id": "r2", "results": records[half:]}
        else:
            body = {"status": "OK", "request_id": "r1", "results": records[:half],
                    "next_url": f"https://api.massive.com/options/v1/open-interest?cursor=p2&root={root}&date={day}"}
        return Response(json.dumps(body), content_type="application/json")
    return handle


@pytest.fixture
def massive_oi(httpserver):
    def start(mode: str = "ok"):
        asked: list = []
        httpserver.clear_all_handlers()  # a test may restart the server in another mode
        httpserver.expect_request("/options/v1/open-interest").respond_with_handler(_oi_handler(mode, asked))
        httpserver.expect_request(re.compile(r"^/v2/aggs/ticker/I:SPX/range/1/day/")).respond_with_handler(
            _bars_handler)
        env = {"POLYGON_API_KEY": KEY, "MASSIVE_BASE_URL": httpserver.url_for("").rstrip("/"),
               "MASSIVE_MAX_TRIES": "1", "MASSIVE_RATE_PER_MIN": "100000"}
        return env, asked
    return start


def _prior(day: str) -> str:
    from gexhistory.calendar import sessions_before

    return sessions_before(dt.date.fromisoformat(day), 1)[0].date.isoformat()


def _expected_close_gex(day: str, r=0.04, q=0.013, window_days=120) -> float:
    """Net GEX at `day`'s close, by hand: the prior session's OI of both roots, without the contracts
    expired by `day` or at its open (the SPX monthly on its third Friday); IV from the model's
    surface, written out from its definition (level = 1.3453 x 20-session realised vol of the closes
    to the prior session, term structure to 18% over 60 days, skew in standard deviations of
    moneyness); Black-Scholes gamma x OI x 100 x S^2 x 1%, calls +, puts -."""
    p = ModelParams()
    prior = _prior(day)
    rv = abs(math.log(6060.0 / 6000.0)) * math.sqrt(252.0)
    level = max(0.05, rv * p.iv_premium)
    s_prior, spot = CLOSES[prior], CLOSES[day]
    at = dt.datetime.fromisoformat(day).replace(hour=16, tzinfo=ET)
    total = 0.0
    for root, records in _contracts(prior).items():
        for c in records:
            expiry = dt.date.fromisoformat(c["expiration_date"])
            am = root == "SPX"
            close = dt.datetime.combine(expiry, dt.time(9, 30) if am else dt.time(16), tzinfo=ET)
            dte = (expiry - dt.date.fromisoformat(day)).days
            t = (close - at).total_seconds() / (365 * 86400)
            if dte < 0 or (am and dte == 0) or not c["open_interest"] or not 0 < t <= (window_days + 1) / 365:
                continue
            term = p.iv_long_run + (level - p.iv_long_run) * math.exp(-dte / p.iv_term_days)
            m = math.log(c["strike_price"] / s_prior) / (term * math.sqrt(max(max(dte, 0.5) / 365, 7 / 365)))
            iv = min(3.0, max(0.05, term * (1 + p.skew_slope * m + p.skew_curve * m * m)))
            k = c["strike_price"]
            d1 = (math.log(spot / k) + (r - q + iv * iv / 2) * t) / (iv * math.sqrt(t))
            gamma = math.exp(-q * t) * math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi) / (spot * iv * math.sqrt(t))
            total += (1 if c["contract_type"] == "call" else -1) * gamma * c["open_interest"] * 100 * spot * spot * 0.01
    return total


@pytest.mark.parametrize("held", ["in memory", "spilled"])
def test_import_oi_stores_each_session_from_the_prior_sessions_open_interest(massive_oi, db_url, monkeypatch, held):
    from gexhistory.pipeline.import_oi import import_open_interest

    if held == "spilled":  # every chain packed to disk as it is read, as past the budget on a long window
        monkeypatch.setenv("GEXHISTORY_IMPORT_HOLD_CONTRACTS", "0")
    env, asked = massive_oi()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    res = import_open_interest("SPX", dt.date(2025, 6, 17), dt.date(2025, 6, 20), db=db_url)
    # Each session's OI is the prior session's (the 20th's is the 18th's: the 19th was a holiday), both roots,
    # two pages each.
    assert sorted({(r, d) for r, d, _ in asked}) == sorted({(r, _prior(s)) for s in SESSIONS for r in ("SPX", "SPXW")})
    assert sum(1 for *_, cursor in asked if cursor == "p2") == 6
    stored = rows(db_url, "SELECT timestamp, spot_price, net_gex, data_source, chain_source FROM gex_history "
                          "WHERE symbol = 'SPX' ORDER BY timestamp")
    assert [(t, s, d, c) for t, s, _, d, c in stored] == [
        (f"{day} 16:00:00", CLOSES[day], "polygon", "massive_oi+model_iv") for day in SESSIONS]
    for (_, _, net, _, _), day in zip(stored, SESSIONS):
        assert net == pytest.approx(_expected_close_gex(day), rel=1e-9)
    # The contracts as stored: modelled IVs, labelled; no expired contract; no SPX monthly on its expiry day.
    got = contract_rows(db_url, "SELECT as_of, COUNT(*), MIN(iv_source), MAX(iv_source), MIN(expiration) "
                                "FROM option_chain_contracts GROUP BY as_of ORDER BY as_of")
    assert [(a, s1, s2) for a, _, s1, s2, _ in got] == [(d, "m", "m") for d in SESSIONS]
    assert all(first >= day for day, _, _, _, first in got)
    # What was left out, counted over the three sessions: the SPXW of 06-18 in the 20th's OI (expired);
    # on the 20th, the SPX monthly of that day (20 contracts, settled at the open); one zero-OI line a session.
    assert res.files[0]["notes"] == [
        "open interest at the close of the session before each one (published that morning): roots SPX, SPXW",
        "implied vols from the chain model's surface (iv_source m)",
        "20 contracts already expired left out (over all sessions)",
        "20 contracts AM-settled, expired at the session's open, left out (over all sessions)",
        "3 contracts with zero OI (no gamma) left out (over all sessions)"]
    # The window's daily bars and the 25 sessions' before it (the first session's vol), under SPX, not I:SPX.
    assert rows(db_url, "SELECT COUNT(*), MIN(timestamp), MIN(data_source) FROM price_bars WHERE symbol = 'SPX' "
                        "AND timeframe = '1d'") == [(25 + len(SESSIONS), "2025-05-12 00:00:00", "polygon")]
    assert rows(db_url, "SELECT command, status FROM backfill_runs") == [("import-oi", "ok")]

    # Again, through the public API: nothing to fetch; with force, the same rows replaced, none added.
    import gexhistory as gx

    before = rows(db_url, "SELECT timestamp, net_gex FROM gex_history ORDER BY timestamp")
    n_asked = len(asked)
    again = gx.import_open_interest("SPX", db=db_url, start="2025-06-17", end="2025-06-20")
    assert len(asked) == n_asked and again.totals == {} and again.notes == [
        "nothing to do: all 3 sessions of SPX in the window were imported already",
        "3 sessions imported already: skipped (--force fetches them again)"]
    forced = gx.import_open_interest("SPX", db=db_url, start="2025-06-17", end="2025-06-20", force=True)
    assert forced.totals["gex_history"] == {"inserted": 0, "replaced": 3}
    assert rows(db_url, "SELECT timestamp, net_gex FROM gex_history ORDER BY timestamp") == before


def test_import_oi_cli_and_what_it_refuses(massive_oi, tmp_path):
    env, _ = massive_oi()
    out = run_cli(["import-oi", "--symbol", "SPX", "--start", "2025-06-17", "--end", "2025-06-20", "--db", "g.db"],
                  tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "massive /options/v1/open-interest SPX: massive_oi, 3 chains" in out.stdout
    assert "chain_source=massive_oi+model_iv" in out.stdout and KEY not in out.stdout + out.stderr
    assert "SPX 2025-06-20: 1 snapshot, spot from daily close (polygon)" in out.stdout

    bad = run_cli(["import-oi", "--symbol", "SPX", "--start", "2025-06-17", "--db", "n.db"], tmp_path)  # no key
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: import-oi needs a Massive/Polygon API key with options data: set POLYGON_API_KEY or MASSIVE_API_KEY "
        "(environment or .env)"]
    assert not (tmp_path / "n.db").exists()
    index = run_cli(["import-oi", "--symbol", "I:SPX", "--start", "2025-06-17", "--db", "n.db"], tmp_path, env=env)
    assert index.returncode == 2 and index.stderr.strip().splitlines() == [
        "error: give the index as its options' underlying, SPX, not I:SPX (its bars are read from I:SPX)"]
    for args, why in ((["--roots", "SPX W"], "--roots must be OCC roots"),
                      (["--start", "2025-06-20", "--end", "2025-06-17"], "--end 2025-06-17 is before --start"),
                      (["--start", "2025-06-21", "--end", "2025-06-22"], "no completed NYSE session from 2025-06-21")):
        out = run_cli(["import-oi", "--symbol", "SPX", *(["--start", "2025-06-17"] if "--start" not in args else []),
                       *args, "--db", "n.db"], tmp_path, env=env)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and why in out.stderr, out.stderr
    assert not (tmp_path / "n.db").exists()


@pytest.mark.parametrize("mode, code, message", [
    ("ignores_date", 1, "answered with open interest for 2025-06-13: the date filter was not applied; nothing stored"),
    ("ignores_root", 1, "answered with root SPXW (O:SPXW250618C05800000): the root filter was not applied"),
    ("not_authorized", 1, "NOT_AUTHORIZED"),
    ("no_history", 1, "no open interest for SPX (SPX, SPXW) in 2025-06-17..2025-06-20"),
])
def test_import_oi_refuses_an_answer_it_cannot_trust_and_writes_nothing(massive_oi, tmp_path, mode, code, message):
    env, _ = massive_oi(mode)
    out = run_cli(["import-oi", "--symbol", "SPX", "--start", "2025-06-17", "--end", "2025-06-20", "--db", "g.db"],
                  tmp_path, env=env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code and len(lines) == 1 and message in lines[0], out.stderr
    assert KEY not in out.stderr
    if (tmp_path / "g.db").exists():
        assert rows(str(tmp_path / "g.db"), "SELECT COUNT(*) FROM gex_history") == [(0,)]


def test_a_session_before_the_plans_history_is_left_and_said(massive_oi, tmp_path, monkeypatch):
    from gexhistory.pipeline.import_oi import import_open_interest

    env, _ = massive_oi("first_missing")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    db = str(tmp_path / "g.db")
    res = import_open_interest("SPX", dt.date(2025, 6, 17), dt.date(2025, 6, 20), db=db)
    assert [s["date"] for s in res.sessions] == ["2025-06-18", "2025-06-20"]
    assert res.notes == ["1 session without open interest from Massive (2025-06-17): before the plan's history, "
                         "or not yet published; left as they were"]


def test_parse_reads_the_contract_from_its_occ_symbol_and_checks_the_rest():
    from gexhistory.errors import ProviderError
    from gexhistory.sources.massive_oi import parse

    day = dt.date(2025, 6, 18)
    recs = [{"ticker": "O:SPXW250620P05925500", "open_interest": 12, "date": "2025-06-18"},
            {"ticker": "O:SPXW251219C07000000", "open_interest": 3.0}]
    got = parse(recs, "SPXW", day)
    assert got.strike.tolist() == [5925.5, 7000.0] and got.is_call.tolist() == [False, True]
    assert [str(e) for e in got.expiry] == ["2025-06-20", "2025-12-19"] and got.oi.tolist() == [12.0, 3.0]
    for bad, why in (({"ticker": "SPXW250620P05925500", "open_interest": 1}, "no OCC option symbol"),
                     ({"ticker": "O:SPXW250620P05925500", "open_interest": -1}, "not a count"),
                     ({"ticker": "O:SPXW250620P05925500", "open_interest": 1.5}, "not a count"),
                     ({"ticker": "O:SPXW250620P05925500", "open_interest": None}, "not a count"),
                     ({"ticker": "O:SPXW250620P05925500", "open_interest": 1, "contract_type": "call"},
                      "has contract_type 'call', its symbol says 'put'"),
                     ({"ticker": "O:SPXW250620P05925500", "open_interest": 1, "strike_price": 5925},
                      "has strike_price 5925, its symbol says 5925.5"),
                     ({"ticker": "O:SPXW250620P05925500", "open_interest": 1, "expiration_date": "2025-06-27"},
                      "has expiration_date '2025-06-27'")):
        with pytest.raises(ProviderError, match=why):
            parse([bad], "SPXW", day)


def test_validate_stored_scores_the_stored_close_gex_against_the_reference(massive_oi, tmp_path):
    """`validate --stored`: the close snapshots import-oi stored, paired with the reference's GEX by date;
    Spearman and sign agreement checked by hand on three sessions."""
    env, _ = massive_oi()
    assert run_cli(["import-oi", "--symbol", "SPX", "--start", "2025-06-17", "--end", "2025-06-20", "--db", "g.db"],
                   tmp_path, env=env).returncode == 0
    stored = [r[0] for r in rows(str(tmp_path / "g.db"), "SELECT net_gex FROM gex_history ORDER BY timestamp")]
    assert len(stored) == 3
    # The reference ranks the three sessions in the opposite order to the stored GEX, with one negative day.
    order = sorted(range(3), key=lambda i: stored[i])
    ref_gex = [0.0] * 3
    for rank, i in enumerate(order):
        ref_gex[i] = [3e9, 1e9, -2e9][rank]
    lines = ["date,price,dix,gex"]
    for d, c in sorted(CLOSES.items()):
        if d <= "2025-06-20":
            g = ref_gex[SESSIONS.index(d)] if d in SESSIONS else 5e8  # sessions nothing is stored for: not scored
            lines.append(f"{d},{c},0.45,{g}")
    (tmp_path / "DIX.csv").write_text("\n".join(lines) + "\n")
    out = run_cli(["validate", "--reference", "DIX.csv", "--stored", "--db", "g.db", "--json"], tmp_path)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["symbol"] == "SPX" and res["span"] == "2025-06-17..2025-06-20"
    s = res["stored"]
    assert s["n"] == 3 and s["spearman"] == pytest.approx(-1.0)  # 1 - 6 * (4 + 0 + 4) / (3 * 8)
    signs_agree = sum((a > 0) == (b > 0) for a, b in zip(stored, ref_gex))
    assert s["sign_agreement"] == pytest.approx(signs_agree / 3)
    assert [c["chain_source"] for c in res["by_chain_source"]] == ["massive_oi+model_iv"]
    assert res["modelled_same_sessions"]["n"] == 3 and [y["year"] for y in res["by_year"]] == [2025]
    plain = run_cli(["validate", "--reference", "DIX.csv", "--stored", "--db", "g.db"], tmp_path)
    assert plain.returncode == 0 and "  massive_oi+model_iv" in plain.stdout and "modelled, same sessions" in plain.stdout

    # The synthetic market is never scored against a real series; flags that need --stored need it.
    assert run_cli(["backfill", "--symbol", "SPX", "--source", "synthetic", "--start", "2025-06-17",
                    "--end", "2025-06-20", "--db", "s.db", "--quiet"], tmp_path).returncode == 0
    for args, why in ((["--stored", "--db", "s.db"], "no stored close snapshot of SPX from real data on the dates"),
                      (["--stored", "--db", "g.db", "--symbol", "SPY"], "no stored history for SPY"),
                      (["--db", "g.db"], "--db and --symbol apply to --stored"),
                      (["--stored", "--calibrate-until", "2022-12-31", "--db", "g.db"], "--calibrate-until applies")):
        bad = run_cli(["validate", "--reference", "DIX.csv", *args], tmp_path)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and why in bad.stderr, bad.stderr
    assert "3 sessions of the synthetic market" in run_cli(
        ["validate", "--reference", "DIX.csv", "--stored", "--db", "s.db"], tmp_path).stderr


def test_a_failed_import_keeps_its_stored_batches_and_a_rerun_resumes(massive_oi, tmp_path, monkeypatch):
    """Batches of one session here (a month in use): the 20th's open interest (the 18th's) fails, the 17th
    and 18th stay stored; the rerun fetches the 20th only."""
    import gexhistory.pipeline.import_oi as import_oi

    monkeypatch.setattr(import_oi, "BATCH_SESSIONS", 1)
    env, asked = massive_oi("fails_on_18th")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    db = str(tmp_path / "g.db")
    with pytest.raises(import_oi.ProviderError, match="HTTP 502"):
        import_oi.import_open_interest("SPX", dt.date(2025, 6, 17), dt.date(2025, 6, 20), db=db)
    assert rows(db, "SELECT timestamp FROM gex_history ORDER BY timestamp") == [
        ("2025-06-17 16:00:00",), ("2025-06-18 16:00:00",)]
    monkeypatch.setattr(import_oi.massive_oi, "fetch", _count_fetches(import_oi.massive_oi.fetch, seen := []))
    env, _ = massive_oi("ok")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    res = import_oi.import_open_interest("SPX", dt.date(2025, 6, 17), dt.date(2025, 6, 20), db=db)
    assert seen == [("SPX", "2025-06-18"), ("SPXW", "2025-06-18")]
    assert [s["date"] for s in res.sessions] == ["2025-06-20"]
    assert res.notes == ["2 sessions imported already: skipped (--force fetches them again)"]
    assert rows(db, "SELECT COUNT(*) FROM gex_history")[0][0] == 3


def _count_fetches(fetch, seen: list):
    def counted(client, root, day):
        seen.append((root, day.isoformat()))
        return fetch(client, root, day)
    return counted
