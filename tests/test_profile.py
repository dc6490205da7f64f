"""The strike profile: a stored snapshot's chain rebuilt as its run computed it, and the profile's net GEX
at spot equal to the stored one; a user's own chain through compute_gex_frame; the engine's profile
adding up (buckets to the whole, the curve through the snapshot and across zero at the flip)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from gexhistory.calendar import ET
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import Conventions, compute_gex_one
from gexhistory.engine.profile import BUCKETS, expiry_buckets, gex_profile
from gexhistory.errors import BadInput
from gexhistory.pipeline.profile import compute_gex_frame, profile_frame, strike_profile
from helpers import rows

AS_OF = dt.date(2025, 6, 2)  # a Monday
EXPIRIES = [dt.date(2025, 6, 2), dt.date(2025, 6, 4), dt.date(2025, 6, 6), dt.date(2025, 6, 13),
            dt.date(2025, 6, 20), dt.date(2025, 7, 3), dt.date(2025, 7, 18)]
SPOT = 600.0


def _contracts():
    out = []
    for j, e in enumerate(EXPIRIES):
        for i, k in enumerate(range(540, 665, 5)):
            iv = 0.16 + 0.25 * (SPOT - k) / SPOT + 0.01 * j
            out.append((e, float(k), "C", round(3000 * math.exp(-((k - 620) / 20) ** 2)) + 10 * (i % 7), round(iv, 6)))
            out.append((e, float(k), "P", round(5000 * math.exp(-((k - 575) / 25) ** 2)) + 15 * (i % 5),
                        round(iv + 0.02, 6)))
    return out


def _close(stored: float, got: float) -> bool:
    return abs(got - stored) <= 1e-9 * abs(stored)


def _stored(db, symbol):
    return rows(db, "SELECT timestamp, net_gex, flip_point, call_wall, put_wall, spot_price FROM gex_history "
                    "WHERE symbol = :s ORDER BY timestamp", s=symbol)


def test_modelled_synthetic_snapshots_equal_the_stored_ones(db_url):
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill

    run_backfill(BackfillOptions(["SPY"], dt.date(2025, 6, 2), dt.date(2025, 6, 6), source="synthetic", seed=7,
                                 db=db_url))
    stored = _stored(db_url, "SPY")
    assert len(stored) == 20
    for ts, net, flip, cw, pw, spot in stored[::3]:
        sp = strike_profile("SPY", ts[:16], db=db_url)  # 'YYYY-MM-DD HH:MM', ET
        snap = sp.profile.snapshot
        assert sp.timestamp == ts and sp.chain_source == "modelled" and sp.data_source == "synthetic"
        assert snap.spot == spot and _close(net, snap.net_gex) and sp.stored_net_gex == net
        assert (snap.call_wall, snap.put_wall) == (cw, pw)
        assert (flip is None) == (snap.flip_point is None) and (flip is None or _close(flip, snap.flip_point))
    latest = strike_profile("spy", db=db_url)
    assert latest.timestamp == stored[-1][0] and _close(stored[-1][1], latest.profile.snapshot.net_gex)
    close_of_day = strike_profile("SPY", dt.date(2025, 6, 3), db=db_url)
    assert close_of_day.timestamp == "2025-06-03 16:00:00"
    again = strike_profile("SPY", dt.datetime(2025, 6, 3, 16, 30, tzinfo=dt.timezone.utc), db=db_url)  # 12:30 ET
    assert again.timestamp == "2025-06-03 12:30:00"


def test_imported_chain_snapshot_equals_the_stored_one(db_url, tmp_path):
    from gexhistory.pipeline.import_chains import import_chains

    path = tmp_path / "chain.csv"
    path.write_text("date,underlying,expiration,strike,right,oi,iv,spot\n" + "\n".join(
        f"{AS_OF},SPY,{e},{k},{r},{oi},{iv},{SPOT}" for e, k, r, oi, iv in _contracts()) + "\n")
    import_chains([str(path)], db=db_url)
    (ts, net, flip, cw, pw, spot), = _stored(db_url, "SPY")
    sp = strike_profile("SPY", db=db_url)
    assert sp.chain_source == "generic:chain.csv" and ts == "2025-06-02 16:00:00" and spot == SPOT
    assert _close(net, sp.profile.snapshot.net_gex) and _close(flip, sp.profile.snapshot.flip_point)
    df = profile_frame("SPY", "2025-06-02", db=db_url)
    assert _close(net, df.attrs["net_gex"]) and df.attrs["stored_net_gex"] == net
    assert list(df.columns) == ["strike", "call_gex", "put_gex", "net_gex", "gex_0dte", "gex_this_week",
                                "gex_monthly", "gex_other"]
    assert df.attrs["timestamp"] == pd.Timestamp("2025-06-02 16:00", tz=ET)
    assert df["gex_0dte"].eq(0).all()  # at the close the day's own expiry has expired
    curve = df.attrs["curve"]
    assert len(curve) == 81 and curve["spot"].iloc[40] == SPOT and curve["net_gex"].iloc[40] == df.attrs["net_gex"]


def test_real_source_modelled_snapshot_equals_the_stored_one(tmp_path):
    """A CSV bars backfill: the chain is rebuilt from the stored price_bars."""
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
    from gexhistory.sources.synthetic import SyntheticMarket

    bars = SyntheticMarket(3).daily_bars("QQQ", dt.date(2023, 1, 3), dt.date(2025, 6, 6))
    path = tmp_path / "qqq.csv"
    path.write_text("date,open,high,low,close\n" + "\n".join(
        f"{d},{o},{h},{lo},{c}" for d, o, h, lo, c in zip(bars.dates, bars.open, bars.high, bars.low, bars.close)) + "\n")
    db = str(tmp_path / "g.db")
    run_backfill(BackfillOptions(["QQQ"], dt.date(2025, 6, 2), dt.date(2025, 6, 6), source="csv", bars=str(path), db=db))
    for ts, net, *_ in _stored(db, "QQQ"):
        sp = strike_profile("QQQ", ts, db=db)
        assert sp.data_source == "csv:qqq.csv" and _close(net, sp.profile.snapshot.net_gex)


def test_missing_snapshot_and_database_are_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no database"):
        strike_profile("SPY", db=str(tmp_path / "none.db"))
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill

    db = str(tmp_path / "g.db")
    run_backfill(BackfillOptions(["SPY"], AS_OF, AS_OF, source="synthetic", db=db))
    with pytest.raises(BadInput, match="no stored snapshot of SPY at 2025-06-02 10:00"):
        strike_profile("SPY", "2025-06-02 10:00", db=db)
    with pytest.raises(BadInput, match="not 'YYYY-MM-DD HH:MM'"):
        strike_profile("SPY", "June 2nd", db=db)


# ---------------------------------------------------------------- a user's own chain
def _frame():
    c = _contracts()
    return pd.DataFrame({"Expiration": [e.isoformat() for e, *_ in c], "strike": [k for _, k, *_ in c],
                         "right": [("call" if r == "C" else "P") for _, _, r, *_ in c],
                         "open_interest": [oi for *_, oi, _ in c], "iv": [iv for *_, iv in c]})


AT = dt.datetime(2025, 6, 2, 12, 30, tzinfo=ET)


def test_compute_gex_frame_is_the_engines_snapshot():
    got = compute_gex_frame(_frame(), SPOT, "2025-06-02 12:30")
    from gexhistory.pipeline.chain_prep import expiry_close_ts

    c = _contracts()
    expiry = np.array([e for e, *_ in c], dtype="datetime64[D]")
    chain = OptionChain("USER", AS_OF, expiry, expiry_close_ts(expiry), np.array([k for _, k, *_ in c]),
                        np.array([r == "C" for _, _, r, *_ in c]), np.array([oi for *_, oi, _ in c], dtype=float),
                        np.array([iv for *_, iv in c]), "user")
    want = compute_gex_one(chain, SPOT, AT)
    for name in ("net_gex", "call_gex", "put_gex", "flip_point", "call_wall", "put_wall", "regime", "max_pain"):
        assert got[name] == getattr(want, name), name
    assert got["gex_unit"] == "usd_per_1pct_move" and got["distance_to_flip_pct"] == want.distance_to_flip_pct
    by_strike = got.attrs["by_strike"]
    assert by_strike["net_gex"].sum() == pytest.approx(want.net_gex, rel=1e-12)
    assert compute_gex_frame(_frame(), SPOT, AT.astimezone(dt.timezone.utc))["net_gex"] == want.net_gex


@pytest.mark.parametrize("change, message", [
    (lambda df: df.drop(columns=["iv"]), "chain_df has no column iv"),
    (lambda df: df.iloc[:0], "chain_df has no rows"),
    (lambda df: df.assign(iv=df["iv"].where(df.index != 7, "abc")), "row 7 (position 7): iv 'abc' is not a number"),
    (lambda df: df.assign(iv=df["iv"].where(df.index != 3, 25.0)), "row 3 (position 3): iv 25.0 is above 10"),
    (lambda df: df.assign(right=df["right"].where(df.index != 5, "X")), "row 5 (position 5): right 'X' is not C"),
    (lambda df: df.assign(strike=df["strike"].where(df.index != 9, -1.0)), "strike -1.0 must be a positive number"),
    (lambda df: df.assign(open_interest=df["open_interest"].where(df.index != 2, -4)), "open_interest -4 must be"),
    (lambda df: df.assign(Expiration=df["Expiration"].where(df.index != 4, "2025-05-30")), "is before 2025-06-02"),
    (lambda df: df.assign(Expiration=df["Expiration"].where(df.index != 4, "soon")), "expiration 'soon' is not a date"),
])
def test_compute_gex_frame_names_the_bad_column_and_row(change, message):
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        compute_gex_frame(change(_frame()), SPOT, AT)


@pytest.mark.parametrize("spot, at, message", [
    (SPOT, dt.datetime(2025, 6, 2, 12, 30), "has no time zone"),
    (SPOT, "2025-06-02", "is not 'YYYY-MM-DD HH:MM'"),
    (-1.0, AT, "spot must be a positive number"),
    ("x", AT, "spot must be a positive number"),
])
def test_compute_gex_frame_checks_spot_and_time(spot, at, message):
    with pytest.raises(BadInput, match=message):
        compute_gex_frame(_frame(), spot, at)


# ---------------------------------------------------------------- the engine's profile
def test_buckets_add_up_and_the_curve_crosses_zero_at_the_flip():
    from gexhistory.pipeline.profile import _user_chain

    ch = _user_chain(_frame(), AT)
    p = gex_profile(ch, SPOT, AT, Conventions())
    assert p.snapshot.net_gex == compute_gex_one(ch, SPOT, AT).net_gex == p.curve_net_gex[40]
    total = sum(p.bucket_gex[b] for b in BUCKETS)
    np.testing.assert_allclose(total, p.net_gex, rtol=1e-12, atol=1e-9 * np.abs(p.net_gex).max())
    assert all(np.abs(p.bucket_gex[b]).sum() > 0 for b in BUCKETS)  # each bucket holds an expiry here
    f = p.snapshot.flip_point
    assert f is not None
    i = np.searchsorted(p.curve_spot, f)
    assert np.sign(p.curve_net_gex[i - 1]) != np.sign(p.curve_net_gex[i])


def test_expiry_buckets():
    days = np.array(["2025-06-02", "2025-06-04", "2025-06-06", "2025-06-13", "2025-06-20", "2025-07-17",
                     "2025-07-18"], dtype="datetime64[D]")
    assert [BUCKETS[b] for b in expiry_buckets(days, AS_OF)] == [
        "0dte", "this_week", "this_week", "other", "monthly", "other", "monthly"]
    good_friday = np.array(["2025-04-16", "2025-04-17", "2025-05-16"], dtype="datetime64[D]")  # 04-18: a holiday
    assert [BUCKETS[b] for b in expiry_buckets(good_friday, dt.date(2025, 4, 14))] == ["this_week", "this_week",
                                                                                         "monthly"]
    assert [BUCKETS[b] for b in expiry_buckets(good_friday, dt.date(2025, 4, 7))] == ["other", "monthly", "monthly"]
