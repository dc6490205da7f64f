"""One Black-Scholes gamma: the exposure engine's factored form against greeks.bs_gamma, the definition.

The engine builds gamma per (snapshot, position) pair from greeks.d1, greeks.gaussian and
greeks.gamma_from_parts, with ln S - ln K for ln(S/K) and what an expiry shares computed once. Those
differ from bs_gamma only in rounding: ln S - ln K carries an absolute error of a few ulps of ln S and
ln K, which d1 divides by sigma sqrt T and the density multiplies by |d1|. The bound below is that
error model; anything beyond it would be a different formula.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.calendar import ET
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import Conventions, compute_gex
from gexhistory.engine.greeks import (MIN_T_YEARS, SECONDS_PER_YEAR, bs_gamma, d1, dollar_gamma_per_pct,
                                      gamma_from_parts, gaussian)

EPS = np.finfo(float).eps


def _bound(s, k, t, iv, d):
    vst = iv * np.sqrt(t)
    return 16 * EPS + 8 * EPS * np.abs(d) * (abs(math.log(s)) + np.abs(np.log(k)) + 1) / vst


@settings(max_examples=300, deadline=None)
@given(s=st.floats(1.0, 5000.0), m=st.floats(0.5, 2.0), t=st.floats(MIN_T_YEARS, 2.0), iv=st.floats(0.02, 3.0),
       r=st.floats(0.0, 0.1), q=st.floats(0.0, 0.1))
def test_factored_gamma_is_bs_gamma(s, m, t, iv, r, q):
    k = np.array([s * m])
    tt, v = np.array([t]), np.array([iv])
    vst = v * np.sqrt(tt)
    d = d1(math.log(s) - np.log(k), tt, v, vst, r, q)
    fast = gamma_from_parts(gaussian(d), np.exp(-q * tt), s * vst)
    want = bs_gamma(s, k, tt, v, r, q)
    assert abs(fast[0] - want[0]) <= want[0] * _bound(s, k, tt, v, d)[0] + 1e-300


def test_bs_gamma_is_the_textbook_order_of_operations():
    """The definition, as the regression test's reference and the flip's full-grid path write it."""
    rng = np.random.default_rng(3)  # test inputs only
    s, k = rng.uniform(50, 500, 500), rng.uniform(40, 600, 500)
    t, v, r, q = rng.uniform(MIN_T_YEARS, 1, 500), rng.uniform(0.03, 1.5, 500), 0.04, 0.013
    x = (np.log(s / k) + (r - q + 0.5 * v**2) * t) / (v * np.sqrt(t))
    textbook = np.exp(-q * t) * np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi) / (s * v * np.sqrt(t))
    np.testing.assert_array_equal(bs_gamma(s, k, t, v, r, q), textbook)


AT = dt.datetime(2025, 6, 2, 12, 30, tzinfo=ET)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.6, 1.6), st.floats(0.05, 60.0), st.floats(0.03, 2.0), st.booleans(),
                          st.integers(1, 5000)), min_size=1, max_size=30),
       st.floats(20.0, 3000.0), st.sampled_from([(0.04, 0.013), (0.0, 0.0), (0.08, 0.03)]))
def test_the_engines_per_strike_gex_is_bs_gamma(contracts, spot, rq):
    """Every contract on its own strike: the engine's per-strike GEX is bs_gamma's dollar gamma."""
    m, days, iv, call, oi = (np.array(x) for x in zip(*contracts))
    strike = np.round(spot * m, 6) + np.arange(m.size) * 1e-3  # distinct strikes
    close = AT.timestamp() + days * 86400.0
    chain = OptionChain("T", AT.date(), (np.datetime64(AT.date(), "D") + days.astype(int)).astype("datetime64[D]"),
                        close, strike, call.astype(bool), oi.astype(float), iv, "test")
    conv = Conventions(r=rq[0], q=rq[1], dte_window=400)
    snap = compute_gex([chain], [[spot]], [[AT]], conv, with_flip=False)[0][0]
    t = (close - AT.timestamp()) / SECONDS_PER_YEAR
    want = dollar_gamma_per_pct(bs_gamma(spot, strike, t, iv, *rq), oi, spot)
    order = np.argsort(strike)
    got = np.where(call, snap.call_gex_by_strike[np.argsort(order)], -snap.put_gex_by_strike[np.argsort(order)])
    tt = np.maximum(t, MIN_T_YEARS)
    dd = d1(math.log(spot) - np.log(strike), tt, iv, iv * np.sqrt(tt), *rq)
    assert np.all(np.abs(got - want) <= want * _bound(spot, strike, tt, iv, dd) + 1e-300)
