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

from gexhistory.chains_import import import_chains
from helpers import rows, run_cli, table_digest

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
    stored = rows(db_url, "SELECT COUNT(*), SUM(open_interest) FROM option_chain_contracts WHERE underlying='SPY'")
    assert stored[0] == (492, sum(c[3] for c in contracts))


def _small(tmp_path, name="small.csv", spot=SPOT, day=AS_OF):
    contracts = [(EXPIRIES[1], 590.0, "C", 1000, 0.15), (EXPIRIES[1], 580.0, "P", 2500, 0.19),
                 (EXPIRIES[2], 620.0, "C", 1800, 0.14), (EXPIRIES[2], 560.0, "P", 900, 0.22)]
    return _generic_file(tmp_path / name, contracts, spot=spot, day=day), contracts


def _digests(db):
    return {t: table_digest(db, t, "SPY") for t in ("gex_history", "gamma_history", "gamma_daily_summary")}


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
    assert rows(db_url, "SELECT COUNT(*) FROM option_chain_contracts")[0][0] == 4
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
    (["2025-06-02,SPY,2025-06-13,590,C,10"], 2, "iv '' is missing"),
    (["2025-06-02,SPY,2025-06-13,590,C,10,0.2,7"], 2, "wrong number of fields"),
    (["2025-06-02,SPY,2025-06-13,590,C,10,0.2", "2025-06-02,SPY,2025-06-13,595,C,10,0.2,7"], 3,
     "wrong number of fields"),
    (["2025-06-02,SPY,2025-06-13,590,C,10,0.2", "2025-06-02,SPY,2025-06-13,595,C,1e,0.2",
      "2025-06-02,SPY,2025-06-13,600,C,2,0.2", "2025-06-02,SPY,2025-06-13,605,C,x,0.2"], 3,
     "oi '1e' is not a number (1 more malformed rows)"),
])
def test_malformed_rows_are_reported_with_file_and_line(tmp_path, body, line, needle):
    from gexhistory.chains_import import parse_files
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
    from gexhistory.backfill import BackfillOptions, compute_sessions, run_backfill
    from gexhistory.calendar import sessions_between
    from gexhistory.chains_import import chain_lookup
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
