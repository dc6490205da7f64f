"""The GEX engine against arithmetic done by hand and against independent closed forms."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.calendar import ET
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import Conventions, compute_gex_one
from gexhistory.engine.greeks import bs_gamma

AT = dt.datetime(2025, 6, 2, 16, 0, tzinfo=ET)
DAY = 86400.0


def _chain(strikes, calls, oi, iv, days) -> OptionChain:
    n = len(strikes)
    exp_ts = np.full(n, AT.timestamp() + days * DAY)
    expiry = np.full(n, np.datetime64(AT.date() + dt.timedelta(days=days), "D"))
    return OptionChain("TEST", AT.date(), expiry, exp_ts, np.array(strikes, float), np.array(calls, bool),
                       np.array(oi, float), np.array(iv, float), "hand")


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _bs_call(s, k, t, v, r, q) -> float:
    ncdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    d1 = (math.log(s / k) + (r - q + 0.5 * v * v) * t) / (v * math.sqrt(t))
    return s * math.exp(-q * t) * ncdf(d1) - k * math.exp(-r * t) * ncdf(d1 - v * math.sqrt(t))


def test_one_call_by_hand_zero_rates():
    # S = K = 100, sigma = 20%, T = 30/365, r = q = 0, OI = 1000:
    # T = 0.0821918, sqrt T = 0.2866910, d1 = (0 + 0.5*0.04*T)/(0.2*sqrt T) = 0.1*sqrt T = 0.0286691
    # phi(d1) = 0.3989423*exp(-d1^2/2) = 0.3987784
    # gamma = phi(d1)/(S sigma sqrt T) = 0.3987784/(100*0.2*0.2866910) = 0.0695484
    # GEX = gamma * 1000 * 100 * 100^2 * 0.01 = 695,484 dollars per 1% move
    snap = compute_gex_one(_chain([100.0], [True], [1000], [0.2], 30), 100.0, AT, Conventions(r=0.0, q=0.0))
    assert snap.net_gex == pytest.approx(695_484, rel=2e-6)
    t = 30 / 365
    d1 = 0.1 * math.sqrt(t)
    by_hand = _phi(d1) / (100 * 0.2 * math.sqrt(t)) * 1000 * 100 * 100**2 * 0.01
    assert snap.net_gex == pytest.approx(by_hand, rel=1e-12)
    assert snap.call_gex == snap.net_gex and snap.put_gex == 0.0
    assert snap.call_wall == 100.0 and snap.put_wall is None
    assert snap.regime == "POSITIVE"


def test_one_put_by_hand_with_rates():
    s, k, v, days, oi, r, q = 452.0, 440.0, 0.31, 9, 2500, 0.04, 0.013
    t = days / 365
    d1 = (math.log(s / k) + (r - q + 0.5 * v * v) * t) / (v * math.sqrt(t))
    gamma = math.exp(-q * t) * _phi(d1) / (s * v * math.sqrt(t))
    gex = gamma * oi * 100 * s * s * 0.01
    snap = compute_gex_one(_chain([k], [False], [oi], [v], days), s, AT, Conventions(r=r, q=q))
    assert snap.put_gex == pytest.approx(-gex, rel=1e-12)
    assert snap.net_gex == pytest.approx(-gex, rel=1e-12)
    assert snap.put_wall == k and snap.call_wall is None
    assert snap.regime == "NEGATIVE"


@settings(max_examples=60, deadline=None)
@given(s=st.floats(20, 2000), m=st.floats(0.7, 1.3), v=st.floats(0.05, 1.5), days=st.floats(1, 400),
       r=st.floats(0, 0.08), q=st.floats(0, 0.05))
def test_gamma_matches_finite_differences_of_a_price(s, m, v, days, r, q):
    k, t = s * m, days / 365
    scale = s * v * math.sqrt(t)  # the price curve bends over this distance: step well inside it
    h = scale * 1e-2
    fd = (_bs_call(s + h, k, t, v, r, q) - 2 * _bs_call(s, k, t, v, r, q) + _bs_call(s - h, k, t, v, r, q)) / (h * h)
    g = float(bs_gamma(s, k, t, v, r, q))
    assert g == pytest.approx(fd, rel=1e-3, abs=1e-6 / scale)


def test_gamma_matches_scipy_closed_form():
    from scipy.stats import norm

    rng = np.random.default_rng(7)  # test inputs only
    s, k = rng.uniform(50, 500, 200), rng.uniform(40, 600, 200)
    t, v = rng.uniform(0.01, 2, 200), rng.uniform(0.05, 1.2, 200)
    d1 = (np.log(s / k) + (0.03 - 0.01 + v * v / 2) * t) / (v * np.sqrt(t))
    expected = np.exp(-0.01 * t) * norm.pdf(d1) / (s * v * np.sqrt(t))
    np.testing.assert_allclose(bs_gamma(s, k, t, v, 0.03, 0.01), expected, rtol=1e-12)


@pytest.mark.parametrize("k_call,k_put,v,days,r,q", [
    (110.0, 90.0, 0.25, 30, 0.04, 0.013),
    (105.0, 97.0, 0.18, 12, 0.0, 0.0),
    (4300.0, 3900.0, 0.2, 45, 0.05, 0.015),
])
def test_zero_gamma_level_known_by_construction(k_call, k_put, v, days, r, q):
    # One call at K1 and one put at K2 with the same OI, IV and expiry: net gamma is zero where
    # n(d1(K1)) = n(d1(K2)), i.e. d1(K1) = -d1(K2):
    # ln(S/K1) + ln(S/K2) + 2(r - q + v^2/2)T = 0  =>  S* = sqrt(K1 K2) exp(-(r - q + v^2/2) T)
    t = days / 365
    s_star = math.sqrt(k_call * k_put) * math.exp(-(r - q + 0.5 * v * v) * t)
    chain = _chain([k_call, k_put], [True, False], [700, 700], [v, v], days)
    conv = Conventions(r=r, q=q)
    spot = s_star * 1.03
    flip = compute_gex_one(chain, spot, AT, conv).flip_point
    assert flip == pytest.approx(s_star, rel=1e-6)
    above = compute_gex_one(chain, s_star * 1.01, AT, conv, with_flip=False)
    below = compute_gex_one(chain, s_star * 0.99, AT, conv, with_flip=False)
    assert above.net_gex > 0 > below.net_gex  # calls' gamma dominates above the flip
    snap = compute_gex_one(chain, spot, AT, conv)
    assert snap.mm_state == "LONG_GAMMA" and snap.distance_to_flip_pct == pytest.approx(
        (spot - s_star) / spot * 100, rel=1e-5)


def test_no_crossing_gives_null_flip():
    chain = _chain([100.0, 105.0], [True, True], [10, 20], [0.2, 0.2], 20)
    snap = compute_gex_one(chain, 100.0, AT)
    assert snap.flip_point is None and snap.flip_found is False


@settings(max_examples=40, deadline=None)
@given(m=st.floats(0.8, 1.25), v=st.floats(0.06, 1.2), days=st.floats(2, 300), call=st.booleans())
def test_implied_vol_recovers_the_vol_a_price_was_made_with(m, v, days, call):
    from gexhistory.engine.implied import implied_vol

    s, t = 250.0, days / 365
    k = s * m
    price = _bs_call(s, k, t, v, 0.03, 0.01)
    if not call:  # put-call parity, written out
        price = price - s * math.exp(-0.01 * t) + k * math.exp(-0.03 * t)
    if _bs_call(s, k, t, v * 1.01, 0.03, 0.01) - _bs_call(s, k, t, v, 0.03, 0.01) < 1e-6 * s:
        return  # a 1% vol change moves the price by less than its precision: nothing to invert
    got = float(implied_vol(np.array([price]), s, k, t, 0.03, 0.01, np.array([call]))[0])
    assert got == pytest.approx(v, rel=1e-5)


def test_iv_fill_interpolates_within_an_expiry_only():
    from gexhistory.engine.implied import fill_iv_by_strike

    key = np.array(["a", "a", "a", "a", "b", "b"])
    strike = np.array([100.0, 110.0, 120.0, 130.0, 100.0, 110.0])
    iv = np.array([0.2, np.nan, 0.3, np.nan, np.nan, np.nan])
    out = fill_iv_by_strike(key, strike, iv)
    np.testing.assert_allclose(out[:4], [0.2, 0.25, 0.3, 0.3])  # linear inside, flat beyond
    assert np.isnan(out[4:]).all()  # an expiry with no quoted IV gets none


@settings(max_examples=200, deadline=None)
@given(x=st.one_of(st.floats(-40, 40), st.sampled_from([0.0, -0.0, 9.19, -9.19, 1e-300, -1e-300])))
def test_the_normal_cdf_matches_the_standard_librarys_erfc(x):
    """No scipy at run time: the CDF behind IVs from prices, against math.erfc (absolute 1e-14)."""
    from gexhistory.engine.implied import norm_cdf

    assert abs(float(norm_cdf(np.array([x]))[0]) - 0.5 * math.erfc(-x / math.sqrt(2))) < 1e-14


def test_the_normal_cdf_keeps_nan_and_the_infinities():
    from gexhistory.engine.implied import norm_cdf

    got = norm_cdf(np.array([np.nan, np.inf, -np.inf]))
    assert np.isnan(got[0]) and got[1] == 1.0 and got[2] == 0.0
