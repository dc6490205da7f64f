"""Cboe delayed-quotes ("quotedata") downloads: the samples in tests/data/quotedata/ imported through
the CLI, checked against GEX, flip and walls computed here from the files' rows with scipy."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from helpers import contract_rows, rows, run_cli

NY = ZoneInfo("America/New_York")
R, Q = 0.04, 0.013  # docs/computation.md: the engine's default r and q
DATA = Path(__file__).parent / "data" / "quotedata"
NEAR, FAR, NVDA = (str(DATA / n) for n in ("spx_quotedata_near.csv", "spx_quotedata_far.csv", "nvda_quotedata.csv"))
AM_ROOTS = {"SPX"}  # of the roots in these samples, the standard SPX monthlies settle at the open


def _contracts(path: str) -> tuple[float, list[dict]]:
    """(Last:, every listed side of every row) as read with the csv module."""
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    spot = next(float(re.search(r"Last:\s*([\d.]+)", ",".join(r)).group(1)) for r in lines if "Last:" in ",".join(r))
    h = next(i for i, r in enumerate(lines) if r and r[0] == "Expiration Date")
    out = []
    for r in lines[h + 1:]:
        if not r:
            continue
        exp = dt.datetime.strptime(r[0], "%a %b %d %Y").date()
        for side, right in ((r[1:11], "C"), (r[12:22], "P")):
            sym, _, _, bid, ask, _, iv, _, _, oi = side
            root = re.match(r"[A-Z]+", sym).group(0)
            bid, ask = float(bid), float(ask)
            out.append({"exp": exp, "root": root, "k": float(r[11]), "right": right, "oi": float(oi),
                        "iv": float(iv) if iv else 0.0, "mid": (bid + ask) / 2 if bid > 0 and ask >= bid else None})
    return spot, out


def _years(c, session_close: dt.datetime) -> float:
    end = dt.time(9, 30) if c["root"] in AM_ROOTS else dt.time(16)
    return (dt.datetime.combine(c["exp"], end, tzinfo=NY) - session_close).total_seconds() / (365 * 86400)


def _bs(s, k, t, v, call):
    from scipy.stats import norm

    d1 = (math.log(s / k) + (R - Q + v * v / 2) * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    c = s * math.exp(-Q * t) * norm.cdf(d1) - k * math.exp(-R * t) * norm.cdf(d2)
    return c if call else c - s * math.exp(-Q * t) + k * math.exp(-R * t)


def _with_ivs(contracts, session_close):
    """Cboe's IV where positive; else the IV of the mid at the expiry's parity forward (median of the
    forwards of the five call/put pairs with the closest mids), by brentq over [0.01, 5]; else none."""
    from scipy.optimize import brentq

    for c in contracts:
        c["t"] = _years(c, session_close)
    fwd = {}
    for key in {(c["exp"], c["t"]) for c in contracts}:
        calls = {c["k"]: c["mid"] for c in contracts if (c["exp"], c["t"]) == key and c["right"] == "C" and c["mid"]}
        puts = {c["k"]: c["mid"] for c in contracts if (c["exp"], c["t"]) == key and c["right"] == "P" and c["mid"]}
        pairs = sorted((abs(calls[k] - puts[k]), k) for k in calls.keys() & puts.keys())[:5]
        if pairs and key[1] > 0:
            fwd[key] = float(np.median([k + math.exp(R * key[1]) * (calls[k] - puts[k]) for _, k in pairs]))
    for c in contracts:
        c["src"] = "f" if c["iv"] > 0 else None
        key = (c["exp"], c["t"])
        if c["iv"] <= 0 and c["mid"] and key in fwd and c["t"] > 0:
            s = fwd[key] * math.exp(-(R - Q) * c["t"])
            f = lambda v: _bs(s, c["k"], c["t"], v, c["right"] == "C") - c["mid"]  # noqa: E731
            if f(0.01) < 0 < f(5.0):
                c["iv"], c["src"] = brentq(f, 0.01, 5.0, xtol=1e-14), "p"
    return contracts


def _merged(contracts, session: dt.date):
    """The contracts that count at the session's close: OI > 0, an IV, alive (an SPX monthly and the
    SPXW contract of its date are two contracts: one expires at the open, the other at the close)."""
    return [c for c in contracts if c["oi"] > 0 and c["iv"] > 0 and c["t"] > 0 and c["exp"] > session]


def _independent(contracts, spot):
    """Net GEX, flip (nearest sign change within +-20%) and walls from the definitions."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    k = np.array([c["k"] for c in contracts])
    call = np.array([c["right"] == "C" for c in contracts])
    oi, iv, t = (np.array([c[f] for c in contracts]) for f in ("oi", "iv", "t"))
    t = np.where(t <= 61 / 365, t, np.nan)  # the DTE window: 60 days (none of the samples' is beyond)
    assert np.isfinite(t).all()

    def dollars(s):
        d1 = (np.log(s / k) + (R - Q + iv**2 / 2) * t) / (iv * np.sqrt(t))
        return np.exp(-Q * t) * norm.pdf(d1) / (s * iv * np.sqrt(t)) * oi * 100 * s * s * 0.01

    sign = np.where(call, 1.0, -1.0)
    d = dollars(spot)
    by_call = {kk: d[call & (k == kk)].sum() for kk in np.unique(k)}
    by_put = {kk: d[~call & (k == kk)].sum() for kk in np.unique(k)}
    call_wall = max((kk for kk in by_call if kk >= spot), key=lambda kk: by_call[kk])
    put_wall = max((kk for kk in by_put if kk <= spot), key=lambda kk: by_put[kk])
    grid = np.linspace(0.8 * spot, 1.2 * spot, 4001)
    vals = (sign * dollars(grid[:, None])).sum(axis=1)
    cross = np.flatnonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))
    mids = (grid[cross] + grid[cross + 1]) / 2
    i = cross[np.argmin(np.abs(mids - spot))]
    flip = brentq(lambda s: float((sign * dollars(s)).sum()), grid[i], grid[i + 1], xtol=1e-12, rtol=1e-14)
    return float((sign * d).sum()), flip, call_wall, put_wall


def _expected(paths, session: dt.date, close_hour=16):
    close = dt.datetime.combine(session, dt.time(close_hour), tzinfo=NY)
    by_key, spot = {}, None
    for p in paths:  # a contract in two files: the later file's row
        spot, cs = _contracts(p)
        for c in _with_ivs(cs, close):
            by_key[(c["exp"], c["root"], c["k"], c["right"])] = c
    return spot, _merged(list(by_key.values()), session)


def test_split_spx_files_import_as_one_chain_matching_an_independent_computation(db_url, tmp_path):
    res = run_cli(["import-chains", NEAR, FAR, "--db", db_url, "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [f["format"] for f in out["files"]] == ["cboe_quotedata"]
    session = out["sessions"][0]
    # Saturday June 11, 8:47 PM: the last session closed by then is Friday's.
    assert (session["symbol"], session["date"], session["spot_source"]) == ("SPX", "2022-06-10", "file: Last:")
    spot, expected = _expected([NEAR, FAR], dt.date(2022, 6, 10))
    assert spot == 3900.8601
    net, flip, call_wall, put_wall = _independent(expected, spot)
    got = rows(db_url, "SELECT spot_price, net_gex, flip_point, call_wall, put_wall, chain_source FROM gex_history")
    assert len(got) == 1
    assert got[0][0] == spot
    assert got[0][1] == pytest.approx(net, rel=1e-6)
    assert got[0][2] == pytest.approx(flip, rel=1e-6)
    assert got[0][3:5] == (call_wall, put_wall)
    assert got[0][5] == "cboe_quotedata:spx_quotedata_near.csv+spx_quotedata_far.csv"
    stored = contract_rows(db_url, "SELECT COUNT(*), SUM(open_interest) + SUM(COALESCE(open_interest_at_open, 0)), "
                          "COUNT(open_interest_at_open) FROM option_chain_contracts")
    keys = {(c["exp"], c["k"], c["right"]) for c in expected}
    assert stored[0][0] == len(keys) and stored[0][1] == pytest.approx(sum(c["oi"] for c in expected))
    assert stored[0][2] == len(expected) - len(keys) > 0  # SPX monthlies stored beside SPXW contracts
    notes = out["files"][0]["notes"]
    kept = [{(c["exp"], c["root"], c["k"], c["right"]) for c in _expected([p], dt.date(2022, 6, 10))[1]}
            for p in (NEAR, FAR)]
    assert len(kept[0] & kept[1]) == 51  # June 17's SPX and SPXW contracts, one without an IV
    assert "51 contracts listed in more than one file counted once (the later file's)" in notes
    # The far file's IV-less rows: SPXW Jun 24 3700 C (no quote) and SPX Jul 15 4150 P (no quote).
    assert "spx_quotedata_far.csv: 2 contracts with OI, IV 0 or blank and no bid/ask left out" in notes
    from gexhistory.pipeline.import_chains import parse_files

    derived = int((parse_files([NEAR, FAR])[0].iv_source == "p").sum())
    assert derived == len({(c["exp"], c["root"], c["k"], c["right"]) for c in _derived([NEAR, FAR])})


def _derived(paths):
    close = dt.datetime(2022, 6, 10, 16, tzinfo=NY)
    return [c for p in paths for c in _with_ivs(_contracts(p)[1], close)
            if c["src"] == "p" and c["oi"] > 0 and c["exp"] > dt.date(2022, 6, 10)]


def test_two_split_files_give_the_chain_of_their_union(tmp_path):
    from gexhistory.pipeline.import_chains import parse_files

    def keyed(item):
        c = item.chain
        return {(str(e), float(k), bool(r)): (float(o), float(v)) for e, k, r, o, v in
                zip(c.expiry, c.strike, c.is_call, c.open_interest, c.iv)}

    near, far = keyed(parse_files([NEAR])[0]), keyed(parse_files([FAR])[0])
    both = parse_files([NEAR, FAR])
    assert len(both) == 1
    union = keyed(both[0])
    assert set(union) == set(near) | set(far) and len(set(near) & set(far)) > 0
    for key, val in union.items():
        assert val == (far.get(key) or near[key])
    assert parse_files([FAR, NEAR])[0].chain.open_interest.sum() == both[0].chain.open_interest.sum()


def test_stock_file_with_blank_and_zero_ivs(db_url, tmp_path):
    res = run_cli(["import-chains", NVDA, "--db", db_url, "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # Sunday January 7, 10:52 AM EST: Friday January 5 is the last session closed by then.
    assert (out["sessions"][0]["symbol"], out["sessions"][0]["date"]) == ("NVDA", "2024-01-05")
    spot, expected = _expected([NVDA], dt.date(2024, 1, 5))
    net, flip, call_wall, put_wall = _independent(expected, spot)
    got = rows(db_url, "SELECT spot_price, net_gex, flip_point, call_wall, put_wall FROM gex_history")[0]
    assert got[0] == spot == 490.97
    assert got[1] == pytest.approx(net, rel=1e-6) and got[2] == pytest.approx(flip, rel=1e-6)
    assert got[3:] == (call_wall, put_wall)
    notes = out["files"][0]["notes"]
    assert "1 contract with zero OI left out (no gamma)" in notes
    assert "1 contract with OI, IV 0 or blank and no bid/ask left out" in notes
    assert "3 IVs from end-of-day mid prices" in notes


def test_underlying_option_overrides_the_roots(tmp_path):
    from gexhistory.pipeline.import_chains import parse_files

    assert parse_files([NVDA], underlying="nvda")[0].chain.underlying == "NVDA"
    assert parse_files([NVDA], underlying="NVD")[0].chain.underlying == "NVD"


@pytest.mark.parametrize("date_line,session", [
    ("June 11, 2022, 8:47 PM EDT", "2022-06-10"),  # Saturday: Friday's session
    ("January 7, 2024 at 10:52 AM EST", "2024-01-05"),  # Sunday, the other spelling
    ("11 June 2022, 8:47 PM EDT", "2022-06-10"),  # day first
    ("June 13, 2022, 11:00 AM EDT", "2022-06-10"),  # Monday morning: the session before
    ("June 13, 2022, 4:00 PM EDT", "2022-06-13"),  # at the close itself
    ("June 13, 2022, 3:59 PM EDT", "2022-06-10"),
    ("June 13, 2022, 3:05 PM CDT", "2022-06-13"),  # 4:05 PM in New York
    ("November 25, 2022, 1:05 PM EST", "2022-11-25"),  # the day after Thanksgiving closes at 1 PM
    ("November 25, 2022, 12:55 PM EST", "2022-11-23"),  # ... and Thanksgiving is no session
    ("April 18, 2022 at 9:00 AM EDT", "2022-04-14"),  # Monday after Good Friday
    # Readers outside the US: their browser's zone, often a 24-hour clock or an offset from GMT
    ("June 13, 2022, 10:05 PM CEST", "2022-06-13"),  # 16:05 in New York
    ("13 June 2022, 21:05 BST", "2022-06-13"),
    ("13 June 2022, 20:55 BST", "2022-06-10"),  # 15:55 in New York: the close has not come
    ("June 13, 2022, 10:05 PM GMT+2", "2022-06-13"),
    ("June 14, 2022, 5:05 AM GMT+9", "2022-06-13"),  # already the next day in Tokyo
    ("June 13, 2022, 9:35 PM GMT+05:30", "2022-06-10"),  # 12:05 in New York
    ("June 13, 2022, 4:05 p.m. EDT", "2022-06-13"),
])
def test_session_is_the_last_one_closed_at_the_date_line(date_line, session):
    from gexhistory.sources.chains.quotedata import read_moment, session_for

    assert session_for(read_moment(date_line)).isoformat() == session


def test_date_line_without_its_quotes(tmp_path):
    """A download saved again by a spreadsheet loses the quotes around the Date field."""
    from gexhistory.pipeline.import_chains import parse_files

    quoted = '"Date: January 7, 2024 at 10:52 AM EST"'
    text = Path(NVDA).read_text().replace(quoted, "Date: January 7, 2024, 10:52 AM EST")
    path = tmp_path / "nvda_quotedata.csv"
    path.write_text(text)
    assert parse_files([str(path)])[0].chain.as_of == dt.date(2024, 1, 5)


def test_a_comma_ending_every_line(tmp_path):
    """Saved again by a tool that ends each line with a comma: an empty 23rd field everywhere."""
    from gexhistory.pipeline.import_chains import parse_files

    lines = Path(NVDA).read_text().splitlines()
    path = tmp_path / "nvda_quotedata.csv"
    path.write_text("\n".join(line + "," if line else line for line in lines) + "\n")
    got, plain = parse_files([str(path)])[0].chain, parse_files([NVDA])[0].chain
    assert len(got) == len(plain) == 86 and got.open_interest.sum() == plain.open_interest.sum()
    assert np.array_equal(got.iv, plain.iv)


@pytest.mark.parametrize("last", ['"Last: 3,900.86"', "Last: 3,900.86"])  # quoted, or unquoted by a spreadsheet
def test_last_with_a_thousands_separator(tmp_path, last):
    from gexhistory.pipeline.import_chains import parse_files

    text = Path(NEAR).read_text()
    assert "Last: 3900.8601" in text
    path = tmp_path / "spx_quotedata.csv"
    path.write_text(text.replace("Last: 3900.8601", last))
    assert parse_files([str(path)])[0].file_spot == 3900.86


@pytest.mark.parametrize("date_line", ["June 31, 2022, 8:47 PM EDT", "June 11, 2022", "June 11, 2022, 13:47 PM EDT",
                                       "June 11, 2022, 8:47 PM XYZ", "Smarch 11, 2022, 8:47 PM EDT",
                                       "11 June 2022, 24:47 BST", "June 11, 2022, 8:47 PM IST",  # IST: three zones
                                       "June 11, 2022, 8:47 PM GMT+15", "11 June 2022, 20:47"])
def test_unreadable_date_lines(date_line):
    from gexhistory.sources.chains.quotedata import read_moment

    assert read_moment(date_line) is None


def _mini(tmp_path, name, date_line, rows_, last="3900.86"):
    header = ("Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,"
              "Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest")
    p = tmp_path / name
    p.write_text("\n".join(["", f"SPX (S&P 500 INDEX),Last: {last},Change: 1.0",
                            f'"Date: {date_line}",Bid: N/A,Ask: N/A', header, *rows_]) + "\n")
    return str(p)


def _row(exp: str, root: str, k: float, oi: int = 100, iv: str = "0.2", bid: str = "1.0", ask: str = "1.2"):
    d = dt.datetime.strptime(exp, "%a %b %d %Y")
    sym = lambda cp: f"{root}{d:%y%m%d}{cp}{int(k * 1000):08d}"  # noqa: E731
    return (f"{exp},{sym('C')},1.1,0.0,{bid},{ask},5,{iv},0.5,0.002,{oi},{k},{sym('P')},1.1,0.0,{bid},{ask},5,"
            f"{iv},-0.5,0.002,{oi}")


def test_am_settled_monthlies_are_gone_from_their_expiration_day(db_url, tmp_path):
    """On its third Friday an SPX monthly settles at the open: at 12:30 only SPXW's contracts of that
    date remain (minute bars stored, so the import writes the day's four snapshots)."""
    from test_chain_import import _store_bars

    start = dt.datetime(2022, 6, 17, 9, 30)
    bars = [((start + dt.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S"), 3700.0, 3700.0) for m in range(390)]
    _store_bars(db_url, "1m", bars)
    _store_bars_symbol(db_url)
    body = [_row("Fri Jun 17 2022", root, k, oi=oi) for root, oi in (("SPX", 5000), ("SPXW", 700))
            for k in (3650.0, 3700.0, 3750.0)]
    path = _mini(tmp_path, "spx_quotedata.csv", "June 17, 2022, 11:05 PM EDT", body, last="3700")
    res = run_cli(["import-chains", path, "--db", db_url, "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert "6 AM-settled contracts expired at the session's open left out" in out["files"][0]["notes"]
    got = rows(db_url, "SELECT substr(timestamp, 12, 5), call_gex FROM gex_history WHERE symbol='SPX' "
                       "ORDER BY timestamp")
    at = dt.datetime(2022, 6, 17, 12, 30, tzinfo=NY)
    t = (dt.datetime(2022, 6, 17, 16, tzinfo=NY) - at).total_seconds() / (365 * 86400)
    from scipy.stats import norm

    calls = 0.0
    for k in (3650.0, 3700.0, 3750.0):  # SPXW's calls alone, IV 0.2
        d1 = (math.log(3700 / k) + (R - Q + 0.02) * t) / (0.2 * math.sqrt(t))
        calls += math.exp(-Q * t) * norm.pdf(d1) / (3700 * 0.2 * math.sqrt(t)) * 700 * 100 * 3700**2 * 0.01
    assert [g[0] for g in got] == ["09:30", "12:30", "15:00", "16:00"]
    assert got[1][1] == pytest.approx(calls, rel=1e-9)
    assert contract_rows(db_url, "SELECT SUM(open_interest) FROM option_chain_contracts")[0][0] == 6 * 700


def _store_bars_symbol(db_url):
    from sqlalchemy import text

    from helpers import engine_for

    eng = engine_for(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE price_bars SET symbol='SPX'"))
    eng.dispose()


def test_am_settled_expiry_closes_at_the_open():
    from gexhistory.pipeline.chain_prep import expiry_close_ts

    days = np.array(["2022-06-17", "2022-06-17", "2022-11-25"], dtype="datetime64[D]")
    got = expiry_close_ts(days, np.array([True, False, True]))
    want = [dt.datetime(2022, 6, 17, 9, 30, tzinfo=NY), dt.datetime(2022, 6, 17, 16, tzinfo=NY),
            dt.datetime(2022, 11, 25, 9, 30, tzinfo=NY)]
    assert got.tolist() == [w.timestamp() for w in want]


def test_am_settled_expiry_is_stored_and_reused_at_the_open(db_url, tmp_path):
    """A monthly listed only under the SPX root: imported timed to the open of its third Friday, and a
    later backfill's chain (rebuilt from the store) times it the same."""
    from gexhistory.pipeline.chain_store import chain_lookup
    from gexhistory.pipeline.import_chains import import_chains, parse_files
    from gexhistory.store.db import open_engine

    body = [_row("Fri Jun 17 2022", "SPX", k) for k in (3850.0, 3900.0)]
    body += [_row("Fri Jun 24 2022", "SPXW", k) for k in (3850.0, 3900.0)]
    path = _mini(tmp_path, "spx_quotedata.csv", "June 10, 2022, 5:00 PM EDT", body)
    imported = parse_files([path])[0].chain
    opening = dt.datetime(2022, 6, 17, 9, 30, tzinfo=NY).timestamp()
    closing = dt.datetime(2022, 6, 24, 16, tzinfo=NY).timestamp()
    assert sorted(set(imported.expiry_close.tolist())) == [opening, closing]
    import_chains([path], db=db_url)
    assert contract_rows(db_url, "SELECT expiration, expires_at_open FROM option_chain_contracts WHERE \"right\" = 'C' "
                        "ORDER BY expiration, strike") == [("2022-06-17", True)] * 2 + [("2022-06-24", False)] * 2
    engine = open_engine(db_url)
    again = chain_lookup(engine, "SPX", dt.date(2022, 6, 1), dt.date(2022, 6, 30))(dt.date(2022, 6, 10))
    engine.dispose()
    assert again.expiry_close.tolist() == imported.expiry_close.tolist()


# ---- properties ------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["a", "b", "ab"]), min_size=4, max_size=4))
def test_pieces_split_by_expiration_give_the_whole_chain(tmp_path, where):
    """However Cboe splits a chain by expiration (an expiration in one piece or in both), the pieces
    given together import as the whole file does."""
    from gexhistory.pipeline.import_chains import parse_files

    text = Path(NVDA).read_text().splitlines()
    head, body = text[:3], text[3:]
    expirations = sorted({r.split(",")[0] for r in body}, key=lambda e: dt.datetime.strptime(e, "%a %b %d %Y"))
    pieces = {"a": [], "b": []}
    for e, w in zip(expirations, where):
        for p in w:
            pieces[p] += [r for r in body if r.startswith(e)]
    paths = []
    for name, rows_ in pieces.items():
        if rows_:
            path = tmp_path / f"nvda_{name}.csv"
            path.write_text("\n".join(head + rows_) + "\n")
            paths.append(str(path))
    whole = parse_files([NVDA])[0].chain
    got = parse_files(paths)
    assert len(got) == 1
    for f in ("expiry", "expiry_close", "strike", "is_call", "open_interest", "iv"):
        np.testing.assert_array_equal(getattr(got[0].chain, f), getattr(whole, f))


_MOMENTS = st.datetimes(min_value=dt.datetime(1996, 1, 1), max_value=dt.datetime(2025, 12, 31))


@settings(max_examples=200, deadline=None)
@given(_MOMENTS, st.sampled_from(["comma", "at", "day-first"]))
def test_date_line_moment_and_session(moment, spelling):
    """A moment written in either of Cboe's spellings reads back to the minute, and its session is the
    last whose close is at or before it: the next session closes after it."""
    from gexhistory.calendar import sessions_between
    from gexhistory.sources.chains.quotedata import read_moment, session_for

    at = moment.replace(second=0, microsecond=0, tzinfo=NY, fold=0)  # hypothesis may give fold=1 too
    # A wall time the DST change skips or repeats is not one a clock prints unambiguously.
    assume(at == at.astimezone(dt.timezone.utc).astimezone(NY) and at.replace(fold=1).utcoffset() == at.utcoffset())
    zone = "EDT" if at.dst() else "EST"
    clock = f"{(at.hour - 1) % 12 + 1}:{at.minute:02d} {'PM' if at.hour >= 12 else 'AM'} {zone}"
    text = {"comma": f"{at:%B} {at.day}, {at.year}, {clock}", "at": f"{at:%B} {at.day}, {at.year} at {clock}",
            "day-first": f"{at.day} {at:%B} {at.year}, {clock}"}[spelling]
    got = read_moment(text)
    assert got == at
    day = session_for(got)
    around = sessions_between(day, day + dt.timedelta(days=10))
    assert around[0].date == day and around[0].close <= at < around[1].close


def test_monthly_beside_weekly_is_two_contracts_stored_and_reused(db_url, tmp_path):
    """An SPX monthly and the SPXW contract of the same date: the first expires at the open, the second
    at the close; stored in one row of the contracts table, rebuilt as the two."""
    from gexhistory.pipeline.chain_store import chain_lookup
    from gexhistory.pipeline.import_chains import import_chains, parse_files
    from gexhistory.store.db import open_engine

    body = [_row("Fri Jun 17 2022", "SPX", 3900.0, oi=5000, iv="0.25"), _row("Fri Jun 17 2022", "SPXW", 3900.0, oi=700)]
    path = _mini(tmp_path, "spx_quotedata.csv", "June 10, 2022, 5:00 PM EDT", body)
    imported = parse_files([path])[0].chain
    opening = dt.datetime(2022, 6, 17, 9, 30, tzinfo=NY).timestamp()
    closing = dt.datetime(2022, 6, 17, 16, tzinfo=NY).timestamp()
    assert sorted(zip(imported.expiry_close, imported.open_interest, imported.iv)) == [
        (opening, 5000.0, 0.25), (opening, 5000.0, 0.25), (closing, 700.0, 0.2), (closing, 700.0, 0.2)]
    res = import_chains([path], db=db_url)
    assert contract_rows(db_url, "SELECT \"right\", open_interest, iv, open_interest_at_open, iv_at_open FROM "
                        "option_chain_contracts ORDER BY \"right\"") == [("C", 700.0, 0.2, 5000.0, 0.25),
                                                                       ("P", 700.0, 0.2, 5000.0, 0.25)]
    engine = open_engine(db_url)
    again = chain_lookup(engine, "SPX", dt.date(2022, 6, 1), dt.date(2022, 6, 30))(dt.date(2022, 6, 10))
    engine.dispose()
    for f in ("expiry", "expiry_close", "strike", "is_call", "open_interest", "iv"):
        np.testing.assert_array_equal(getattr(again, f), getattr(imported, f))
    from gexhistory.engine.exposure import compute_gex_one

    at = dt.datetime(2022, 6, 10, 16, tzinfo=NY)
    assert compute_gex_one(again, 3900.86, at).net_gex == res.sessions[0]["net_gex"]


def _compressed(src: str, dest: Path) -> Path:
    import bz2
    import gzip
    import lzma
    import zipfile

    data = Path(src).read_bytes()
    if dest.suffix == ".zip":
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(Path(src).name, data)
            if "finder" in dest.name:  # as macOS's Finder makes it: a resource fork beside the file
                z.writestr(f"__MACOSX/._{Path(src).name}", b"\x00\x05\x16\x07Mac OS X")
    else:
        dest.write_bytes({".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[dest.suffix](data))
    return dest


@pytest.mark.parametrize("name", ["nvda_quotedata.csv.gz", "nvda_quotedata.csv.bz2", "nvda_quotedata.csv.xz",
                                  "nvda_quotedata.zip", "nvda_quotedata_finder.zip"])
def test_a_compressed_download_imports_as_the_plain_one(tmp_path, name):
    """Years of daily downloads are kept compressed: each compression pandas reads by its suffix is
    detected as quotedata and gives the plain file's session, values and notes."""
    packed = _compressed(NVDA, tmp_path / name)
    plain = run_cli(["import-chains", NVDA, "--db", str(tmp_path / "plain.db"), "--json"], tmp_path)
    res = run_cli(["import-chains", str(packed), "--db", str(tmp_path / "packed.db"), "--json"], tmp_path)
    assert plain.returncode == 0 and res.returncode == 0, res.stderr
    a, b = json.loads(plain.stdout), json.loads(res.stdout)
    assert b["files"][0]["format"] == "cboe_quotedata" and b["files"][0]["contracts"] == a["files"][0]["contracts"]
    assert b["files"][0]["notes"] == a["files"][0]["notes"]
    keep = ("symbol", "date", "net_gex", "flip_point", "call_wall", "put_wall")
    assert [{k: s[k] for k in keep} for s in b["sessions"]] == [{k: s[k] for k in keep} for s in a["sessions"]]
    assert b["sessions"][0]["date"] == "2024-01-05"


def test_a_truncated_compressed_download_is_one_line_and_nothing_written(tmp_path):
    import gzip

    whole = gzip.compress(Path(NVDA).read_bytes())
    cut = tmp_path / "nvda_quotedata.csv.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])  # the preamble survives, the end of the stream does not
    res = run_cli(["import-chains", str(cut), "--db", str(tmp_path / "gex.db")], tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: {cut}: unreadable quotedata file (Compressed file ended before the end-of-stream marker was reached)"]
    assert not (tmp_path / "gex.db").exists()
