"""One Black-Scholes gamma: the exposure engine's factored form against greeks.bs_gamma, the definition.

The engine builds gamma per (snapshot, position) pair from greeks.d1, greeks.gaussian and
greeks.gamma_from_parts, with ln S - ln K for ln(S/K) and what an expiry shares computed once. Those
differ from bs_gamma only in rounding: ln S - ln K carries an absolute error of a few ulps of ln S and
ln K, which d1 divides by sigma sqrt T and the density multiplies by |d1|. The bound below is that
error model; anything beyond it would be a different formula.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.engine.greeks import MIN_T_YEARS, bs_gamma, d1, gamma_from_parts, gaussian

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
