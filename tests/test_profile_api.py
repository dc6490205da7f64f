"""/api/gex/profile on SQLite and PostgreSQL: the stored snapshot's numbers, its chain's GEX by strike
(an imported chain's checked strike by strike against Black-Scholes written in the test), buckets and
curve that add up to the stored net GEX to 1e-9, and which snapshot `at` names."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

import profile_data
from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from gexhistory.web.app import create_app
from helpers import rows

START, END = dt.date(2025, 5, 1), dt.date(2025, 7, 31)
IMPORTED = dt.date(2025, 6, 2)  # a Monday: this week's Friday, monthlies and later weeks all listed
REL = 1e-9


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile_api")
    if request.param == "sqlite":
        db = str(folder / "gex_copilot.db")
    else:
        from conftest import _reset_pg

        db = request.getfixturevalue("pg_database_url")
        _reset_pg(db)
    run_backfill(BackfillOptions(["SPY"], START, END, source="synthetic", db=db))
    contracts, spot, label = profile_data.import_chain(db, folder, IMPORTED)
    app = create_app(db)
    with TestClient(app) as client:
        yield db, client, (contracts, spot, label)
    app.state.db.dispose()


def _profile(client, query: str, status: int = 200) -> dict:
    r = client.get(f"/api/gex/profile?symbol=SPY&{query}")
    assert r.status_code == status, (query, r.text[:300])
    return r.json()


def _stored(db, ts: str) -> dict:
    cols = ("timestamp", "spot_price", "net_gex", "call_gex", "put_gex", "flip_point", "call_wall", "put_wall",
            "regime", "chain_source")
    got = rows(db, f"SELECT {', '.join(cols)} FROM gex_history WHERE symbol='SPY' AND timestamp=:t", t=ts)
    return dict(zip(cols, got[0]))


def _adds_up(d: dict) -> None:
    """Strikes, buckets and the curve's middle point all give the snapshot's net GEX."""
    net = d["net_gex"]
    assert d["profile_net_gex"] == pytest.approx(net, rel=REL)
    assert sum(d["strikes"]["call_gex"]) + sum(d["strikes"]["put_gex"]) == pytest.approx(net, rel=REL)
    assert sum(sum(b["net_gex"]) for b in d["buckets"]) == pytest.approx(net, rel=REL)
    assert [b["bucket"] for b in d["buckets"]] == ["0DTE", "this week", "monthly", "other"]
    mid = len(d["curve"]["spot"]) // 2
    assert d["curve"]["spot"][mid] == d["spot_price"] and d["curve"]["net_gex"][mid] == pytest.approx(net, rel=REL)
    assert d["curve"]["spot"][0] == pytest.approx(0.8 * d["spot_price"]) and d["curve"]["spot"][-1] == pytest.approx(1.2 * d["spot_price"])
    assert d["strikes"]["strike"] == sorted(d["strikes"]["strike"])


def test_modelled_snapshots_add_up_to_the_stored_row(built):
    db, client, _ = built
    closes = rows(db, "SELECT date, MAX(timestamp) FROM gamma_history WHERE symbol='SPY' GROUP BY date ORDER BY date")
    picks = [("", closes[-1][1]), (f"at={closes[10][0]}", closes[10][1]),
             (f"at={closes[30][0]}T12:30", f"{closes[30][0]} 12:30:00"),
             (f"at={closes[30][0]}T13:45", f"{closes[30][0]} 12:30:00")]  # the last snapshot at or before 13:45
    for query, ts in picks:
        body = _profile(client, query)
        d = body["data"]
        want = _stored(db, ts)
        assert d["timestamp"] == ts and d["chain_source"] == "modelled" and d["modelled"] is True, query
        for k, v in want.items():
            assert d[k] == (pytest.approx(v) if isinstance(v, float) else v), (query, k)
        _adds_up(d)
        assert body["synthetic"] is True


def test_imported_chain_strike_by_strike(built):
    db, client, (contracts, spot, label) = built
    d = _profile(client, f"at={IMPORTED}")["data"]
    ts = f"{IMPORTED} 16:00:00"
    assert d["timestamp"] == ts and d["chain_source"] == label and d["modelled"] is False
    assert d["net_gex"] == pytest.approx(_stored(db, ts)["net_gex"]) and d["spot_price"] == pytest.approx(spot)
    _adds_up(d)
    want = profile_data.per_strike(contracts, spot, dt.datetime.combine(IMPORTED, dt.time(16), tzinfo=profile_data.NY))
    got = dict(zip(d["strikes"]["strike"], zip(d["strikes"]["call_gex"], d["strikes"]["put_gex"])))
    assert sorted(got) == sorted(want)
    for k, (c, p) in want.items():
        assert got[k] == (pytest.approx(c, rel=1e-9), pytest.approx(p, rel=1e-9)), k
    # 2025-06-02 is a Monday: its Friday (June 6) is 'this week', the third Friday (June 20) 'monthly'.
    june6 = profile_data.per_strike([c for c in contracts if c[0] == dt.date(2025, 6, 6)], spot,
                                    dt.datetime.combine(IMPORTED, dt.time(16), tzinfo=profile_data.NY))
    week = next(b for b in d["buckets"] if b["bucket"] == "this week")
    assert sum(week["net_gex"]) == pytest.approx(sum(c + p for c, p in june6.values()), rel=1e-9)
    assert sum(next(b for b in d["buckets"] if b["bucket"] == "0DTE")["net_gex"]) == 0.0  # nothing expires Monday


def test_sessions_and_bad_requests(built):
    db, client, _ = built
    steps = client.get("/api/gex/profile/sessions?symbol=SPY").json()
    days = rows(db, "SELECT COUNT(DISTINCT date) FROM gamma_history WHERE symbol='SPY'")[0][0]
    assert steps["count"] == days and steps["data"][0]["timestamp"].startswith(START.isoformat())
    assert _profile(client, "at=2025-06-01", 404)["success"] is False  # a Sunday: no session
    assert "no stored SPY snapshot on 2025-06-01" in _profile(client, "at=2025-06-01", 404)["detail"]
    assert _profile(client, "at=2025-06-02T09:00", 404)["success"] is False  # before the first snapshot
    for bad in ("at=2025-02-30", "at=June", "at=2025-06-02T25:00"):
        assert _profile(client, bad, 400)["success"] is False
    assert client.get("/api/gex/profile?symbol=ZZZ").status_code == 404


def test_parse_at():
    from gexhistory.web.profile import parse_at

    assert parse_at("2026-03-16T16:00") == "2026-03-16 16:00:00"
    assert parse_at("2026-03-16 09:30:00") == "2026-03-16 09:30:00"
    assert parse_at("2026-03-16") == "2026-03-16 23:59:59"  # that session's last snapshot
    assert parse_at(None) is None and parse_at("") is None
