"""import-chains: sample files in each format imported end to end on SQLite and PostgreSQL, checked
against independent computations; bad files rejected whole with file:line; re-import idempotent."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from gexhistory.pipeline.import_chains import import_chains
from helpers import contract_rows, rows, run_cli, table_digest

NY = ZoneInfo("America/New_York")
R, Q = 0.04, 0.013  # the engine's documented default conventions
AS_OF = dt.date(2025, 6, 2)  # a Monday; its session closes at 16:00 ET
EXPIRIES = [dt.date(2025, 6, 6), dt.date(2025, 6, 13), dt.date(2025, 6, 20), dt.date(2025, 6, 27),
            dt.date(2025, 7, 11), dt.date(2025, 7, 18)]  # full-day Friday sessions within 60 days
SPOT = 600.0


def _write(path: Path, header: str, lines: list[str]) -> str:
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return str(path)


def _big_chain() -> list[tuple]:
    """A few hundred contracts, deterministic: puts massed below spot, calls above, IV skewed."""
    out = []
    for j, e in enumerate(EXPIRIES):
        for i, k in enumerate(range(500, 705, 5)):
            iv = 0.16 + 0.25 * (SPOT - k) / SPOT + 0.01 * j
            call_oi = round(4000 * math.exp(-((k - 625) / 25) ** 2)) + 10 * (i % 7)
            put_oi = round(6000 * math.exp(-((k - 565) / 30) ** 2)) + 15 * (i % 5)
            out.append((e, float(k), "C", call_oi, round(iv, 6)))
            out.append((e, float(k), "P", put_oi, round(iv + 0.02, 6)))
    return out


def _generic_file(path: Path, contracts, spot: float | None = SPOT, day: dt.date = AS_OF) -> str:
    header = "date,underlying,expiration,strike,right,oi,iv" + (",spot" if spot else "")
    lines = [f"{day},SPY,{e},{k},{r},{oi},{iv}" + (f",{spot}" if spot else "") for e, k, r, oi, iv in contracts]
    return _write(path, header, lines)


def _independent(contracts, spot: float, at: dt.datetime):
    """Net/call/put GEX, walls and the flip nearest spot, written from the definitions with scipy."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    k = np.array([c[1] for c in contracts])
    call = np.array([c[2] == "C" for c in contracts])
    oi = np.array([c[3] for c in contracts], float)
    iv = np.array([c[4] for c in contracts])
    expiry_close = np.array([dt.datetime.combine(c[0], dt.time(16), tzinfo=NY).timestamp() for c in contracts])
    t = (expiry_close - at.timestamp()) / (365 * 86400)

    def dollars(s):  # s: a spot, or a column of spots
        d1 = (np.log(s / k) + (R - Q + iv**2 / 2) * t) / (iv * np.sqrt(t))
        gamma = np.exp(-Q * t) * norm.pdf(d1) / (s * iv * np.sqrt(t))
        return gamma * oi * 100 * s * s * 0.01

    d = dollars(spot)
    call_gex, put_gex = d[call].sum(), -d[~call].sum()
    by_k_call = {kk: d[call & (k == kk)].sum() for kk in np.unique(k)}
    by_k_put = {kk: d[~call & (k == kk)].sum() for kk in np.unique(k)}
    call_wall = max((kk for kk in by_k_call if kk >= spot), key=lambda kk: by_k_call[kk])
    put_wall = max((kk for kk in by_k_put if kk <= spot), key=lambda kk: by_k_put[kk])
    sign = np.where(call, 1.0, -1.0)
    net = lambda s: float((sign * dollars(s)).sum())  # noqa: E731
    grid = np.linspace(0.8 * spot, 1.2 * spot, 4001)
    vals = (sign * dollars(grid[:, None])).sum(axis=1)
    cross = np.flatnonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))
    assert cross.size == 1, "the test chain is built to cross zero once within +-20%"
    flip = brentq(net, grid[cross[0]], grid[cross[0] + 1], xtol=1e-12, rtol=1e-14)
    return call_gex + put_gex, call_gex, put_gex, flip, call_wall, put_wall


def test_generic_few_hundred_contracts_match_independent_computation(db_url, tmp_path):
    contracts = _big_chain()
    assert len(contracts) == 492
    path = _generic_file(tmp_path / "spy_chain.csv", contracts)
    res = import_chains([path], db=db_url)
    assert res.files[0]["contracts"] == 492 and res.files[0]["format"] == "generic"
    at = dt.datetime.combine(AS_OF, dt.time(16), tzinfo=NY)
    net, call_gex, put_gex, flip, call_wall, put_wall = _independent(contracts, SPOT, at)
    got = rows(db_url, "SELECT timestamp, spot_price, net_gex, call_gex, put_gex, flip_point, call_wall, put_wall, "
                       "chain_source, data_source, flip_found FROM gex_history WHERE symbol='SPY'")
    assert len(got) == 1
    ts, spot, g_net, g_call, g_put, g_flip, g_cw, g_pw, chain_source, data_source, found = got[0]
    assert ts == "2025-06-02 16:00:00" and spot == SPOT
    assert g_net == pytest.approx(net, rel=1e-6)
    assert g_call == pytest.approx(call_gex, rel=1e-6) and g_put == pytest.approx(put_gex, rel=1e-6)
    assert g_flip == pytest.approx(flip, rel=1e-6) and bool(found)
    assert (g_cw, g_pw) == (call_wall, put_wall)
    assert chain_source == data_source == "generic:spy_chain.csv"
    summary = rows(db_url, "SELECT close_gex, close_flip, snapshots_count, chain_source FROM gamma_daily_summary")
    assert summary[0][0] == pytest.approx(net, rel=1e-6) and summary[0][2] == 1
    stored = contract_rows(db_url, "SELECT COUNT(*), SUM(open_interest) FROM option_chain_contracts WHERE underlying='SPY'")
    assert stored[0] == (492, sum(c[3] for c in contracts))


def _small(tmp_path, name="small.csv", spot=SPOT, day=AS_OF):
    contracts = [(EXPIRIES[1], 590.0, "C", 1000, 0.15), (EXPIRIES[1], 580.0, "P", 2500, 0.19),
                 (EXPIRIES[2], 620.0, "C", 1800, 0.14), (EXPIRIES[2], 560.0, "P", 900, 0.22)]
    return _generic_file(tmp_path / name, contracts, spot=spot, day=day), contracts


def _digests(db):
    return {t: table_digest(db, t, "SPY") for t in ("gex_history", "gamma_history", "gamma_daily_summary")}


def test_cli_output_of_a_market_wide_file_stays_short(tmp_path):
    """45 underlyings in one file: the file line names the first 12 and counts the rest, 40 session
    lines then one that counts the others; --json still lists every session."""
    names = [f"U{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(45)]
    lines = [f"{AS_OF},{u},{EXPIRIES[1]},{k},{r},1000,0.2,100" for u in names for k, r in ((100, "C"), (95, "P"))]
    path = _write(tmp_path / "market.csv", "date,underlying,expiration,strike,right,oi,iv,spot", lines)
    db = str(tmp_path / "m.db")
    out = run_cli(["import-chains", path, "--db", db], tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout.splitlines()
    assert f"{','.join(names[:12])} and 33 more 2025-06-02..2025-06-02" in text[0]
    sessions = [ln for ln in text if ln.startswith("  U") and ": 1 snapshot" in ln]
    assert [ln.split()[0] for ln in sessions] == names[:40]
    assert "  ... and 5 more sessions (--json lists every one)" in text
    again = run_cli(["import-chains", path, "--db", db, "--json"], tmp_path)
    assert [s["symbol"] for s in json.loads(again.stdout)["sessions"]] == names


def test_cli_import_then_reimport_is_idempotent(db_url, tmp_path):
    path, _ = _small(tmp_path)
    first = run_cli(["import-chains", path, "--db", db_url, "--json"], tmp_path)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["totals"]["gex_history"] == {"inserted": 1, "replaced": 0}
    assert out["sessions"][0]["spot_source"] == "file: spot column"
    before = _digests(db_url)
    again = import_chains([path], db=db_url)
    assert again.totals["gex_history"] == {"inserted": 0, "replaced": 1}
    assert _digests(db_url) == before
    assert contract_rows(db_url, "SELECT COUNT(*) FROM option_chain_contracts")[0][0] == 4
    assert rows(db_url, "SELECT COUNT(*) FROM option_chains")[0][0] == 1


@pytest.mark.parametrize("body,line,needle", [
    (["2025-06-02,SPY,2025-06-13,590,C,1000,0.15", "2025-06-02,SPY,2025-06-13,abc,P,10,0.2"], 3, "strike 'abc'"),
    (["2025-06-02,SPY,2025-06-13,590,X,1000,0.15"], 2, "right 'X' is not C or P"),
    (["2025-06-02,SPY,2025-06-13,590,C,1000,0.15", "", "2025-06-02,SPY,2025-06-13,590,C,5,0.15"], 4,
     "duplicate contract (same as line 2)"),
    (["2025-06-02,SPY,2025-06-13,590,C,-3,0.15"], 2, "oi '-3' must not be negative"),
    (["2025-06-02,SPY,2025-06-13,590,C,10,25"], 2, "IVs are decimals"),
    (["2025-06-07,SPY,2025-06-13,590,C,10,0.2"], 2, "not an NYSE session"),
    (["2025-06-02,SPY,2025-05-30,590,C,10,0.2"], 2, "before the chain's date"),
    (["2025-06-02,SPY,2025-06-13,590,C,10,0.2,7"], 2, "wrong number of fields"),
    (["2025-06-02,SPY,2025-06-13,590,C,10,0.2", "2025-06-02,SPY,2025-06-13,595,C,10,0.2,7"], 3,
     "wrong number of fields"),
    (["2025-06-02,SPY,2025-06-13,590,C,10,0.2", "2025-06-02,SPY,2025-06-13,595,C,1e,0.2",
      "2025-06-02,SPY,2025-06-13,600,C,2,0.2", "2025-06-02,SPY,2025-06-13,605,C,x,0.2"], 3,
     "oi '1e' is not a number (1 more malformed rows)"),
])
def test_malformed_rows_are_reported_with_file_and_line(tmp_path, body, line, needle):
    from gexhistory.pipeline.import_chains import parse_files
    from gexhistory.errors import BadInput

    bad = _write(tmp_path / "bad.csv", "date,underlying,expiration,strike,right,oi,iv", body)
    with pytest.raises(BadInput) as err:
        parse_files([bad])
    assert str(err.value).startswith(f"{bad}:{line}: ") and needle in str(err.value), str(err.value)


def test_malformed_file_among_good_ones_changes_nothing(db_url, tmp_path):
    good, _ = _small(tmp_path)
    human = run_cli(["import-chains", good, "--db", db_url], tmp_path)
    assert human.returncode == 0 and "chain_source=generic:small.csv" in human.stdout
    before = _digests(db_url)
    bad = _write(tmp_path / "bad.csv", "date,underlying,expiration,strike,right,oi,iv",
                 ["2025-06-03,SPY,2025-06-13,590,C,1000,0.15", "2025-06-03,SPY,2025-06-13,abc,P,10,0.2"])
    other, _ = _small(tmp_path, name="other.csv", day=dt.date(2025, 6, 3))
    res = run_cli(["import-chains", other, bad, "--db", db_url], tmp_path)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert err == [f"error: {bad}:3: strike 'abc' is not a number"], err
    assert _digests(db_url) == before  # the good file given with it was not imported either
    assert rows(db_url, "SELECT COUNT(*) FROM option_chains")[0][0] == 1
    assert rows(db_url, "SELECT COUNT(*) FROM backfill_runs WHERE command='import-chains'")[0][0] == 1


@pytest.mark.parametrize("content", ["symbol,date,close\nSPY,2025-06-02,600\n", "", "\x00\x01binary\xff\n",
                                     "date,underlying,expiration,strike,right,oi,iv\n"])
def test_not_a_chain_file_is_rejected_whole(tmp_path, content):
    path = tmp_path / "prices.csv"
    path.write_bytes(content.encode("latin-1"))
    db = tmp_path / "x.db"
    res = run_cli(["import-chains", str(path), "--db", str(db)], tmp_path)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}") and ("not an option chain file" in err[0]
                                                                        or "no contracts" in err[0])
    assert not db.exists()


@pytest.mark.parametrize("name", ["chain.csv.gz", "chain.csv.bz2", "chain.csv.xz", "chain.zip"])
def test_a_file_that_is_not_what_its_suffix_says_is_rejected_whole(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"date,underlying,expiration,strike,right,oi,iv\n")  # plain text under a compressed name
    db = tmp_path / "x.db"
    res = run_cli(["import-chains", str(path), "--db", str(db)], tmp_path)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: not an option chain file (unreadable as CSV: "), err
    assert not db.exists()


def _finder_zip(src: Path, dest: Path) -> Path:
    """A .zip as macOS's Finder makes it: the file, and its resource fork under __MACOSX/."""
    import zipfile

    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(src.name, src.read_bytes())
        z.writestr(f"__MACOSX/._{src.name}", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    return dest


@pytest.mark.parametrize("sample", ["cboe_datashop_26.csv", "spaced_quotes.csv"])
def test_a_zip_made_by_macos_finder_imports_as_its_file(tmp_path, sample):
    """Finder's Compress adds __MACOSX/._<name> beside the file; pandas refuses such a .zip ("Multiple
    files found"). spaced_quotes.csv (a quote after a space) takes pandas' reader, the DataShop file
    Arrow's."""
    if sample == "spaced_quotes.csv":
        src = Path(_small(tmp_path, name=sample)[0])
        lines = src.read_text().splitlines()
        assert ",SPY," in lines[1]
        src.write_text("\n".join([lines[0], lines[1].replace(",SPY,", ', "SPY",', 1), *lines[2:]]) + "\n")
    else:
        src = Path(__file__).parent / "data" / "chains" / sample
    packed = _finder_zip(src, tmp_path / (src.stem + ".zip"))
    outs = []
    for f, db in ((src, "plain.db"), (packed, "zipped.db")):
        res = run_cli(["import-chains", str(f), "--db", str(tmp_path / db), "--json"], tmp_path)
        assert res.returncode == 0, res.stderr
        outs.append(json.loads(res.stdout))
    plain, zipped = outs
    assert zipped["files"][0]["format"] == plain["files"][0]["format"]
    assert zipped["files"][0]["contracts"] == plain["files"][0]["contracts"] > 0
    keep = ("symbol", "date", "net_gex", "flip_point", "call_wall", "put_wall")
    assert [{k: s[k] for k in keep} for s in zipped["sessions"]] == [{k: s[k] for k in keep} for s in plain["sessions"]]


def test_missing_file_and_no_spot(db_url, tmp_path):
    res = run_cli(["import-chains", str(tmp_path / "nope.csv"), "--db", db_url], tmp_path)
    assert res.returncode == 2 and "no such file" in res.stderr
    path, _ = _small(tmp_path, spot=None)
    res = run_cli(["import-chains", path, "--db", db_url], tmp_path)
    assert res.returncode == 2 and "no underlying price for SPY on 2025-06-02" in res.stderr
    assert rows(db_url, "SELECT COUNT(*) FROM gex_history")[0][0] == 0


def _store_bars(db, timeframe, bars, source="polygon"):
    from helpers import engine_for
    from sqlalchemy import insert

    from gexhistory.store.db import init_schema, open_engine
    from gexhistory.store.schema import price_bars

    init_schema(open_engine(db))
    eng = engine_for(db)
    with eng.begin() as conn:
        conn.execute(insert(price_bars), [{"symbol": "SPY", "timeframe": timeframe, "timestamp": ts, "open": o,
                                           "close": c, "data_source": source} for ts, o, c in bars])
    eng.dispose()


def test_spot_from_stored_daily_close_when_file_has_none(db_url, tmp_path):
    _store_bars(db_url, "1d", [("2025-06-02 00:00:00", 598.0, 603.25)])
    _store_bars(db_url, "1d", [("2025-06-02 00:00:00", 1.0, 999.0)], source="synthetic")  # never used
    path, contracts = _small(tmp_path, spot=None)
    res = import_chains([path], db=db_url)
    assert res.sessions[0]["spot_source"] == "daily close (polygon)"
    got = rows(db_url, "SELECT spot_price, data_source, chain_source, net_gex FROM gex_history")
    assert got[0][:3] == (603.25, "polygon", "generic:small.csv")
    at = dt.datetime.combine(AS_OF, dt.time(16), tzinfo=NY)
    from scipy.stats import norm

    net = 0.0
    for e, k, r, oi, iv in contracts:
        t = (dt.datetime.combine(e, dt.time(16), tzinfo=NY) - at).total_seconds() / (365 * 86400)
        d1 = (math.log(603.25 / k) + (R - Q + iv * iv / 2) * t) / (iv * math.sqrt(t))
        g = math.exp(-Q * t) * norm.pdf(d1) / (603.25 * iv * math.sqrt(t))
        net += (1 if r == "C" else -1) * g * oi * 100 * 603.25**2 * 0.01
    assert got[0][3] == pytest.approx(net, rel=1e-9)


def test_four_snapshots_from_stored_minute_bars(db_url, tmp_path):
    start = dt.datetime(2025, 6, 2, 9, 30)
    bars = [((start + dt.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S"), 590.0 + m / 100, 590.5 + m / 100)
            for m in range(390)]
    _store_bars(db_url, "1m", bars)
    path, _ = _small(tmp_path)
    res = import_chains([path], db=db_url)
    assert res.sessions[0]["snapshots"] == 4 and res.sessions[0]["spot_source"] == "minute bars (polygon)"
    got = rows(db_url, "SELECT time_of_day, spot_price, data_source FROM gamma_history ORDER BY timestamp")
    # 09:30 is the first bar's open; later times the close of the minute that ended then.
    assert [g[0] for g in got] == ["09:30", "12:30", "15:00", "16:00"]
    assert [g[1] for g in got] == pytest.approx([590.0, 590.5 + 179 / 100, 590.5 + 329 / 100, 590.5 + 389 / 100])
    assert {g[2] for g in got} == {"polygon"}
    assert rows(db_url, "SELECT snapshots_count, open_price FROM gamma_daily_summary")[0] == (4, 590.0)


def test_backfill_keeps_imported_sessions_and_compute_uses_the_chain(db_url, tmp_path):
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
    from gexhistory.pipeline.compute import compute_sessions
    from gexhistory.calendar import sessions_between
    from gexhistory.pipeline.chain_store import chain_lookup
    from gexhistory.engine.chain_model import ModelParams
    from gexhistory.engine.exposure import Conventions
    from gexhistory.sources.synthetic import SyntheticMarket
    from gexhistory.store.db import open_engine

    start, end = dt.date(2025, 5, 27), dt.date(2025, 6, 6)
    run_backfill(BackfillOptions(["SPY"], start, end, source="synthetic", db=db_url))
    path, _ = _small(tmp_path)
    import_chains([path], db=db_url)
    imported = rows(db_url, "SELECT * FROM gex_history WHERE timestamp LIKE '2025-06-02%'")
    assert [r[-3] for r in imported] == ["generic:small.csv"]  # chain_source
    forced = run_backfill(BackfillOptions(["SPY"], start, end, source="synthetic", db=db_url, force=True))
    assert forced.symbols[0].sessions_skipped == 1  # synthetic prices never overwrite a real chain's session
    assert rows(db_url, "SELECT * FROM gex_history WHERE timestamp LIKE '2025-06-02%'") == imported
    others = rows(db_url, "SELECT DISTINCT chain_source FROM gex_history WHERE timestamp NOT LIKE '2025-06-02%'")
    assert others == [("modelled",)]
    # With a real price source, the backfill recomputes that session from the stored chain:
    engine = open_engine(db_url)
    lookup = chain_lookup(engine, "SPY", start - dt.timedelta(days=45), end)
    todo = sessions_between(AS_OF, AS_OF + dt.timedelta(days=1))
    out = list(compute_sessions(SyntheticMarket(42), "SPY", todo, Conventions(), ModelParams(), chains=lookup))
    assert [r["gex_history"][0]["chain_source"] for r in out] == ["generic:small.csv", "modelled"]
    assert len(lookup(AS_OF)) == 4 and lookup(AS_OF + dt.timedelta(days=1)) is None
    engine.dispose()


# ---- the vendor formats -------------------------------------------------------------------------

CBOE_26 = ("underlying_symbol,quote_date,root,expiration,strike,option_type,open,high,low,close,trade_volume,"
           "bid_size_1545,bid_1545,ask_size_1545,ask_1545,underlying_bid_1545,underlying_ask_1545,bid_size_eod,"
           "bid_eod,ask_size_eod,ask_eod,underlying_bid_eod,underlying_ask_eod,vwap,open_interest,delivery_code")
CBOE_34 = CBOE_26.replace("underlying_ask_1545,", "underlying_ask_1545,implied_underlying_price_1545,"
                          "active_underlying_price_1545,implied_volatility_1545,delta_1545,gamma_1545,theta_1545,"
                          "vega_1545,rho_1545,")


def _t(expiry: dt.date) -> float:
    at = dt.datetime.combine(AS_OF, dt.time(16), tzinfo=NY)
    return (dt.datetime.combine(expiry, dt.time(16), tzinfo=NY) - at).total_seconds() / (365 * 86400)


def _price(s, k, t, v, call):
    """Black-Scholes price, written here independently of the package."""
    from scipy.stats import norm

    d1 = (math.log(s / k) + (R - Q + v * v / 2) * t) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    if call:
        return s * math.exp(-Q * t) * norm.cdf(d1) - k * math.exp(-R * t) * norm.cdf(d2)
    return k * math.exp(-R * t) * norm.cdf(-d2) - s * math.exp(-Q * t) * norm.cdf(-d1)


def _net(contracts, spot):
    """Net GEX at the session close from (expiry, strike, 'C'/'P', oi, iv) rows."""
    from scipy.stats import norm

    net = 0.0
    for e, k, r, oi, iv in contracts:
        t = _t(e)
        d1 = (math.log(spot / k) + (R - Q + iv * iv / 2) * t) / (iv * math.sqrt(t))
        g = math.exp(-Q * t) * norm.pdf(d1) / (spot * iv * math.sqrt(t))
        net += (1 if r == "C" else -1) * g * oi * 100 * spot * spot * 0.01
    return net


def _vendor_contracts():
    out = []
    for e in EXPIRIES[:2]:
        for k in (570.0, 585.0, 600.0, 615.0, 630.0):
            iv = round(0.17 + 0.3 * (SPOT - k) / SPOT, 6)
            out.append((e, k, "C", int(800 + 7 * k) % 3000 + 100, iv))
            out.append((e, k, "P", int(500 + 11 * k) % 4000 + 100, iv + 0.01))
    return out


def _stored(db, source_like):
    return contract_rows(db, "SELECT expiration, strike, \"right\", open_interest, iv, iv_source FROM option_chain_contracts "
                    "WHERE chain_source LIKE :s ORDER BY expiration, strike, \"right\"", s=source_like)


def test_cboe_26_columns_iv_from_prices(db_url, tmp_path):
    # One vol per strike, so that the quotes obey put-call parity (the IVs are taken at its forward).
    call_iv = {(e, k): iv for e, k, r, oi, iv in _vendor_contracts() if r == "C"}
    contracts = [(e, k, r, oi, call_iv[(e, k)]) for e, k, r, oi, _ in _vendor_contracts()]
    lines = []
    for e, k, r, oi, iv in contracts:
        p = _price(SPOT, k, _t(e), iv, r == "C")
        lines.append(f"SPY,{AS_OF},SPY,{e},{k:.3f},{r},0,0,0,0,5,1,0,1,0,0,0,10,{p * 0.99:.12g},10,{p * 1.01:.12g},"
                     f"599.99,600.01,0,{oi},")
    lines.append(f"SPY,{AS_OF},SPY,{EXPIRIES[0]},640.000,C,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,599.99,600.01,0,0,")
    path = _write(tmp_path / "UnderlyingOptionsEODQuotes_2025-06-02.csv", CBOE_26, lines)
    res = import_chains([path], db=db_url)
    assert res.files[0]["format"] == "cboe_datashop"
    assert res.files[0]["chain_source"] == "cboe_datashop:UnderlyingOptionsEODQuotes_2025-06-02.csv"
    assert "1 contract with zero OI left out (no gamma)" in res.files[0]["notes"]
    assert res.sessions[0]["spot_source"] == "file: underlying_bid/ask_eod mid"
    stored = _stored(db_url, "cboe_datashop:%")
    assert len(stored) == len(contracts) and {s[5] for s in stored} == {"p"}
    for (e, k, r, oi, iv), s in zip(sorted(contracts, key=lambda c: (c[0], c[1], c[2])), stored):
        assert (s[0], s[1], s[2], s[3]) == (e.isoformat(), k, r, oi)
        assert s[4] == pytest.approx(iv, rel=1e-6)  # the IV the price was made with, recovered
    net = rows(db_url, "SELECT net_gex, spot_price, chain_source, data_source FROM gex_history")[0]
    assert net[0] == pytest.approx(_net(contracts, SPOT), rel=1e-6) and net[1] == pytest.approx(SPOT)
    assert net[2] == net[3] == res.files[0]["chain_source"]


def test_cboe_34_columns_index_roots_merged_spot_by_parity(db_url, tmp_path):
    contracts = _vendor_contracts()
    call_iv = {(e, k): iv for e, k, r, oi, iv in contracts if r == "C"}
    lines = []
    for e, k, r, oi, iv in contracts:
        p = _price(SPOT, k, _t(e), call_iv[(e, k)], r == "C")  # one vol per strike: parity holds exactly
        for root, share in (("SPXQ", 0.25), ("SPXW", 0.75)):  # one expiration under two PM-settled roots
            lines.append(f"^SPX,{AS_OF},{root},{e},{k},{r},0,0,0,0,5,1,0,1,0,0,0,0,0,{iv},0.5,0.001,0,0,0,10,"
                         f"{p * 0.98:.12g},10,{p * 1.02:.12g},0,0,0,{oi * share:g},")
    path = _write(tmp_path / "UnderlyingOptionsEODCalcs_2025-06-02.csv", CBOE_34, lines)
    res = import_chains([path], db=db_url)
    assert res.sessions[0]["symbol"] == "SPX"
    assert res.sessions[0]["spot_source"] == "file: implied: put-call parity on end-of-day mids"
    assert any("listed under two roots merged" in n for n in res.files[0]["notes"])
    stored = _stored(db_url, "cboe_datashop:%")
    assert [s[3] for s in stored] == [c[3] for c in sorted(contracts, key=lambda c: (c[0], c[1], c[2]))]
    assert {s[5] for s in stored} == {"f"}  # implied_volatility_1545 used as given
    spot = rows(db_url, "SELECT spot_price, net_gex FROM gex_history WHERE symbol='SPX'")[0]
    assert spot[0] == pytest.approx(SPOT, rel=1e-9)
    assert spot[1] == pytest.approx(_net(contracts, spot[0]), rel=1e-6)


def test_index_spot_by_parity_times_an_am_settled_expiry_to_its_open(db_url, tmp_path):
    """The nearest expiry of an index file is the AM-settled SPX monthly: its quotes, priced to the open
    of its expiration day, give the spot only when parity takes T to that open (to the close it is off
    by about K r 6.5 h, 3e-5 of the spot)."""
    monthly, weekly = dt.date(2025, 6, 20), dt.date(2025, 6, 27)
    close = dt.datetime.combine(AS_OF, dt.time(16), tzinfo=NY)
    t_open = (dt.datetime.combine(monthly, dt.time(9, 30), tzinfo=NY) - close).total_seconds() / (365 * 86400)
    lines = []
    for root, e, t in (("SPX", monthly, t_open), ("SPXW", weekly, _t(weekly))):
        for k in (585.0, 595.0, 600.0, 605.0, 615.0):
            for r in ("C", "P"):
                p = _price(SPOT, k, t, 0.2, r == "C")
                lines.append(f"^SPX,{AS_OF},{root},{e},{k},{r},0,0,0,0,5,1,0,1,0,0,0,0,0,0.2,0.5,0.001,0,0,0,10,"
                             f"{p * 0.99:.12g},10,{p * 1.01:.12g},0,0,0,1000,")
    path = _write(tmp_path / "UnderlyingOptionsEODCalcs_2025-06-02.csv", CBOE_34, lines)
    res = import_chains([path], db=db_url)
    assert res.sessions[0]["spot_source"] == "file: implied: put-call parity on end-of-day mids"
    assert rows(db_url, "SELECT spot_price FROM gex_history WHERE symbol='SPX'")[0][0] == pytest.approx(SPOT, rel=1e-9)


@pytest.mark.parametrize("spelling", ["api", "smv"])
def test_orats_strikes_both_spellings(db_url, tmp_path, spelling):
    contracts = _vendor_contracts()
    calls = {(e, k): (oi, iv) for e, k, r, oi, iv in contracts if r == "C"}
    puts = {(e, k): oi for e, k, r, oi, iv in contracts if r == "P"}
    if spelling == "api":
        header = "ticker,tradeDate,expirDate,dte,strike,stockPrice,callOpenInterest,putOpenInterest,callMidIv,putMidIv,smvVol,gamma"
        fmt_day = lambda d: d.isoformat()  # noqa: E731
    else:
        header = "ticker,stkPx,expirDate,yte,strike,cOi,pOi,cMidIv,pMidIv,smoothSmvVol,gamma,trade_date"
        fmt_day = lambda d: d.strftime("%m/%d/%Y")  # noqa: E731
    lines = []
    for (e, k), (coi, iv) in calls.items():
        if spelling == "api":
            lines.append(f"SPY,{fmt_day(AS_OF)},{fmt_day(e)},9,{k},{SPOT},{coi},{puts[(e, k)]},0.5,0.5,{iv},0.01")
        else:
            lines.append(f"SPY,{SPOT},{fmt_day(e)},0.03,{k},{coi},{puts[(e, k)]},0.5,0.5,{iv},0.01,{fmt_day(AS_OF)}")
    path = _write(tmp_path / f"orats_{spelling}.csv", header, lines)
    res = import_chains([path], db=db_url)
    assert res.files[0]["format"] == "orats" and res.files[0]["contracts"] == len(contracts)
    assert res.sessions[0]["spot_source"] == ("file: stockPrice" if spelling == "api" else "file: stkPx")
    # smvVol is one IV per strike, used for the call and the put alike
    smv = [(e, k, r, oi, calls[(e, k)][1]) for e, k, r, oi, _ in contracts]
    got = rows(db_url, "SELECT net_gex, chain_source FROM gex_history")[0]
    assert got[0] == pytest.approx(_net(smv, SPOT), rel=1e-6) and got[1] == f"orats:orats_{spelling}.csv"
    assert contract_rows(db_url, "SELECT COUNT(*) FROM option_chain_contracts WHERE gamma = 0.01")[0][0] == len(contracts)


def _optionsdx_file(tmp_path, contracts, name="spy_eod_202506.txt"):
    header = ("[QUOTE_UNIXTIME], [QUOTE_READTIME], [QUOTE_DATE], [QUOTE_TIME_HOURS], [UNDERLYING_LAST], "
              "[EXPIRE_DATE], [EXPIRE_UNIX], [DTE], [C_DELTA], [C_GAMMA], [C_VEGA], [C_THETA], [C_RHO], [C_IV], "
              "[C_VOLUME], [C_LAST], [C_SIZE], [C_BID], [C_ASK], [STRIKE], [P_BID], [P_ASK], [P_SIZE], [P_LAST], "
              "[P_DELTA], [P_GAMMA], [P_VEGA], [P_THETA], [P_RHO], [P_IV], [P_VOLUME], [STRIKE_DISTANCE], "
              "[STRIKE_DISTANCE_PCT]")
    by = {}
    for e, k, r, oi, iv in contracts:
        by.setdefault((e, k), {})[r] = (oi, iv)
    lines = []
    for (e, k), sides in by.items():
        (coi, civ), (poi, piv) = sides["C"], sides["P"]
        lines.append(f"1748894400, 2025-06-02 16:00, {AS_OF}, 16.000000, {SPOT}, {e}, 0, 9.0, 0.5, 0.01, 0.1, "
                     f"-0.1, 0.1, {civ}, {coi // 10}, 1.0, 1 x 1, 1.0, 1.1, {k}, 1.0, 1.1, 1 x 1, 1.0, -0.5, 0.01, "
                     f"0.1, -0.1, -0.1, {piv}, {poi // 10}, 0.0, 0.0")
    return _write(tmp_path / name, header, lines)


def test_optionsdx_with_oi_file_and_with_volume_proxy(db_url, tmp_path):
    contracts = _vendor_contracts()
    path = _optionsdx_file(tmp_path, contracts)
    oi_lines = [f"{AS_OF},SPY,{e},{k},{r},{oi}" for e, k, r, oi, iv in contracts[:-1]]  # one contract unlisted
    oi_file = _write(tmp_path / "oi.csv", "date,underlying,expiration,strike,right,oi", oi_lines)
    res = import_chains([path], db=db_url, oi_file=oi_file)
    assert res.files[0]["chain_source"] == "optionsdx:spy_eod_202506.txt+oi"
    assert "1 contract absent from the OI file oi.csv: no OI" in res.files[0]["notes"]
    got = rows(db_url, "SELECT net_gex, spot_price, chain_source, data_source FROM gex_history")[0]
    assert got[0] == pytest.approx(_net(contracts[:-1], SPOT), rel=1e-6)
    assert got[1:] == (SPOT, "optionsdx:spy_eod_202506.txt+oi", "optionsdx:spy_eod_202506.txt+oi")

    proxy = run_cli(["import-chains", path, "--volume-as-oi", "--db", db_url, "--json"], tmp_path)
    assert proxy.returncode == 0, proxy.stderr
    label = "optionsdx:spy_eod_202506.txt+volume_proxy"
    assert json.loads(proxy.stdout)["files"][0]["chain_source"] == label
    volume = [(e, k, r, oi // 10, iv) for e, k, r, oi, iv in contracts]
    got = rows(db_url, "SELECT net_gex, chain_source FROM gex_history")
    assert len(got) == 1 and got[0][1] == label  # the session now holds the latest import
    assert got[0][0] == pytest.approx(_net(volume, SPOT), rel=1e-6)


def test_optionsdx_needs_an_oi_source(tmp_path):
    from gexhistory.pipeline.import_chains import parse_files
    from gexhistory.errors import BadInput

    path = _optionsdx_file(tmp_path, _vendor_contracts(), name="opts.txt")
    with pytest.raises(BadInput, match="OptionsDX files carry no open interest"):
        parse_files([path])
    with pytest.raises(BadInput, match="cannot tell the underlying"):
        parse_files([path], volume_as_oi=True)
    assert parse_files([path], volume_as_oi=True, underlying="spy")[0].chain.underlying == "SPY"
    generic, _ = _small(tmp_path)
    with pytest.raises(BadInput, match="apply to OptionsDX files"):
        parse_files([generic], volume_as_oi=True)


def test_zipped_cboe_file_reads_like_the_csv(tmp_path):
    import zipfile

    from gexhistory.pipeline.import_chains import parse_files

    contracts = _vendor_contracts()
    lines = [f"SPY,{AS_OF},SPY,{e},{k},{r},0,0,0,0,5,1,0,1,0,0,0,0,0,{iv},0.5,0.001,0,0,0,10,0,10,0,599.99,600.01,0,"
             f"{oi},0" for e, k, r, oi, iv in contracts]
    csv = _write(tmp_path / "UnderlyingOptionsEODCalcs_2025-06-02.csv", CBOE_34, lines)
    zpath = tmp_path / "UnderlyingOptionsEODCalcs_2025-06-02.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(csv, arcname=Path(csv).name)
    a, b = parse_files([csv])[0], parse_files([str(zpath)])[0]
    assert b.label == "cboe_datashop:UnderlyingOptionsEODCalcs_2025-06-02.zip" and len(b.chain) == len(contracts)
    np.testing.assert_array_equal(a.chain.open_interest, b.chain.open_interest)
    np.testing.assert_array_equal(a.chain.iv, b.chain.iv)
    assert b.file_spot == pytest.approx(600.0) and b.chain.gamma is not None


def test_status_check_accepts_end_of_day_imports(tmp_path):
    from gexhistory.store.db import open_engine
    from gexhistory.store.status import check_symbol

    db = str(tmp_path / "g.db")
    path, _ = _small(tmp_path)
    import_chains([path], db=db)
    engine = open_engine(db)
    assert [p for p in check_symbol(engine, "SPY") if p.kind == "short_session"] == []
    from sqlalchemy import text

    with engine.begin() as conn:  # a modelled session with one snapshot is still short
        conn.execute(text("UPDATE gamma_daily_summary SET chain_source='modelled'"))
    assert [p.kind for p in check_symbol(engine, "SPY")].count("short_session") == 2
    engine.dispose()


def test_real_price_backfill_force_recomputes_from_the_imported_chain(db_url, tmp_path):
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
    from gexhistory.calendar import sessions_between

    start, end = dt.date(2025, 5, 27), dt.date(2025, 6, 6)
    closes = {s.date: 598.0 + i for i, s in enumerate(sessions_between(start, end))}
    bars = _write(tmp_path / "bars.csv", "date,close,volume", [f"{d},{c},70000000" for d, c in closes.items()])
    opts = dict(source="csv", bars=bars, db=db_url)
    run_backfill(BackfillOptions(["SPY"], start, end, **opts))
    path, contracts = _small(tmp_path)
    import_chains([path], db=db_url)
    forced = run_backfill(BackfillOptions(["SPY"], start, end, force=True, **opts))
    assert forced.symbols[0].sessions_skipped == 0
    got = rows(db_url, "SELECT spot_price, net_gex, data_source, chain_source FROM gex_history "
                       "WHERE timestamp = '2025-06-02 16:00:00'")
    assert got[0][2:] == ("csv:bars.csv", "generic:small.csv")  # real prices, the imported chain
    assert got[0][0] == closes[AS_OF]
    assert got[0][1] == pytest.approx(_net(contracts, closes[AS_OF]), rel=1e-6)
    others = rows(db_url, "SELECT DISTINCT chain_source FROM gex_history WHERE timestamp NOT LIKE '2025-06-02%'")
    assert others == [("modelled",)]


@pytest.mark.parametrize("spec", ["x.db", "sqlite:///x.db?timeout=5"])
def test_an_import_leaves_its_rows_in_the_database_file_itself_when_it_exits(tmp_path, spec):
    """The write-ahead log is copied into the database file on a thread after the commit (a large
    import's checkpoint is I/O the command need not wait for); the process still waits for it, so
    when it exits the log is gone and a reader that ignores logs finds every row in the file. A URL's
    query is no part of the file's name."""
    import sqlite3

    data = Path(__file__).parent / "data" / "chains"
    db = tmp_path / "x.db"
    out = run_cli(["import-chains", str(data / "cboe_datashop_34.csv"), str(data / "generic.csv"), "--db", spec],
                  tmp_path)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]  # no log left, no other file made
    frozen = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)  # reads the file alone, never a log
    try:
        # Both files hold SPY on 2025-06-02: the later one's chain is the session's.
        assert frozen.execute("SELECT COUNT(*) FROM gex_history").fetchone()[0] == 1
        assert frozen.execute("SELECT format FROM option_chains").fetchall() == [("generic",)]
        assert frozen.execute("SELECT status FROM backfill_runs").fetchall() == [("ok",)]
    finally:
        frozen.close()


@pytest.mark.parametrize("hold", ["", "0"], ids=["held", "spilled"])
def test_the_same_underlying_and_date_in_two_files_is_the_later_files_and_said(db_url, tmp_path, monkeypatch, hold):
    """Two vendors' files of SPY 2025-06-02 in one import: the later file's chain is stored, as a second
    import would store it, and its notes name the earlier file whose chain it replaced; nothing vanishes
    unsaid. Either order, and with every chain spilled to disk."""
    data = Path(__file__).parent / "data" / "chains"
    cboe, orats = str(data / "cboe_datashop_26.csv"), str(data / "orats_strikes.csv")
    monkeypatch.setenv("GEXHISTORY_IMPORT_HOLD_CONTRACTS", hold)
    for earlier, later, label, chains in ((cboe, orats, "orats:orats_strikes.csv", 1),
                                          (orats, cboe, "cboe_datashop:cboe_datashop_26.csv", 2)):
        res = import_chains([earlier, later], db=db_url)
        assert [f["file"] for f in res.files] == [later]
        assert f"1 chain replaced the same underlying and date read from {earlier} (the later file wins)" \
            in res.files[0]["notes"]
        assert rows(db_url, "SELECT DISTINCT chain_source FROM gex_history") == [(label,)]
        # the first round stores the later file's chain only; the second adds its own beside it (the
        # stored chains are kept per source, the sessions replaced)
        got = rows(db_url, "SELECT chain_source FROM option_chains")
        assert (label,) in got and len(got) == chains
    alone = import_chains([cboe], db=db_url)  # one file: no such note
    assert not any("replaced" in n for n in alone.files[0]["notes"])
