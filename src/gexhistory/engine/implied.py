"""What a chain file implies when it does not say it: IV from an option's price, the underlying from
put-call parity, and IVs interpolated across strikes of one expiry. Pure numpy, no I/O."""

from __future__ import annotations

import functools
import math

import numpy as np


ERFC_SPAN = 6.5  # erfc(6.5) = 3.8e-20: beyond it a normal tail is zero at double precision's absolute resolution


@functools.cache
def _erfcx_coefficients() -> np.ndarray:
    """Chebyshev coefficients of erfcx(z) = exp(z^2) erfc(z) on [0, ERFC_SPAN], interpolated from the
    standard library's erfc at 41 points: smooth there, so degree 40 is within 2e-14 of erfc (relative)
    across the span, and no scipy is needed at run time."""
    from numpy.polynomial import chebyshev

    erfc = np.frompyfunc(math.erfc, 1, 1)

    def erfcx(y):  # y in [-1, 1] -> z in [0, ERFC_SPAN]
        z = (np.asarray(y, dtype=float) + 1.0) * (ERFC_SPAN / 2)
        return np.exp(z * z) * erfc(z).astype(float)

    return chebyshev.chebinterpolate(erfcx, 40)


def norm_cdf(x):
    """The standard normal CDF, element-wise (absolute error below 1e-14; NaN stays NaN)."""
    from numpy.polynomial import chebyshev

    x = np.asarray(x, dtype=float)
    z = np.abs(x) / math.sqrt(2.0)
    zc = np.minimum(z, ERFC_SPAN)
    tail = np.where(z > ERFC_SPAN, 0.0, 0.5 * np.exp(-zc * zc) * chebyshev.chebval(zc * (2 / ERFC_SPAN) - 1,
                                                                               _erfcx_coefficients()))
    return np.where(x < 0, tail, 1.0 - tail)


def bs_price(spot, strike, t, iv, r: float, q: float, is_call) -> np.ndarray:
    return _price_and_vega(spot, strike, t, iv, r, q, is_call)[0]


def _price_and_vega(spot, strike, t, iv, r: float, q: float, is_call) -> tuple[np.ndarray, np.ndarray]:
    spot, strike, t, iv = (np.asarray(a, dtype=float) for a in (spot, strike, t, iv))
    sqrt_t = np.sqrt(t)
    vst = iv * sqrt_t
    d1 = (np.log(spot / strike) + (r - q + 0.5 * iv * iv) * t) / vst
    d2 = d1 - vst
    fwd_s, disc_k = spot * np.exp(-q * t), strike * np.exp(-r * t)
    call = fwd_s * norm_cdf(d1) - disc_k * norm_cdf(d2)
    vega = fwd_s * np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) * sqrt_t  # the same for a put
    return np.where(is_call, call, call - fwd_s + disc_k), vega  # put by put-call parity


def implied_vol(price, spot, strike, t, r: float, q: float, is_call, lo: float = 0.01, hi: float = 5.0,
                tolerance: float = 1e-12, max_steps: int = 200) -> np.ndarray:
    """Black-Scholes IV; NaN where the price is outside what any vol in [lo, hi] gives (below
    intrinsic, above the bound) or inputs are unusable. Newton steps inside a bracket that every step
    narrows (price is monotone in vol), halving it wherever Newton would leave it (a tiny vega far
    from the money): a handful of steps per contract, each step only for those not yet converged."""
    price, spot, strike, t = (np.asarray(a, dtype=float) for a in (price, spot, strike, t))
    shape = price.shape
    price, spot, strike, t = (np.broadcast_to(a, shape).ravel() for a in (price, spot, strike, t))
    is_call = np.broadcast_to(np.asarray(is_call, dtype=bool), shape).ravel()
    ok = np.isfinite(price) & (price > 0) & (t > 0) & np.isfinite(spot) & (spot > 0) & (strike > 0)
    s, k, tt = np.where(ok, spot, 1.0), np.where(ok, strike, 1.0), np.where(ok, t, 1.0)
    ok &= (price >= bs_price(s, k, tt, lo, r, q, is_call)) & (price <= bs_price(s, k, tt, hi, r, q, is_call))
    a, b = np.full(price.size, lo), np.full(price.size, hi)
    vol = np.full(price.size, min(max(0.3, lo), hi))
    todo = np.flatnonzero(ok)
    for _ in range(max_steps):
        if todo.size == 0:
            break
        v = vol[todo]
        p, vega = _price_and_vega(s[todo], k[todo], tt[todo], v, r, q, is_call[todo])
        high = p > price[todo]
        a[todo] = np.where(high, a[todo], v)
        b[todo] = np.where(high, v, b[todo])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # vega 0: bisect instead
            step = v - (p - price[todo]) / vega
        inside = np.isfinite(step) & (step > a[todo]) & (step < b[todo])
        new = np.where(inside, step, 0.5 * (a[todo] + b[todo]))
        vol[todo] = new
        todo = todo[(np.abs(new - v) > tolerance) & (b[todo] - a[todo] > tolerance)]
    return np.where(ok, vol, np.nan).reshape(shape)


def parity_spot(call_mid, put_mid, strike, t, r: float, q: float) -> float | None:
    """Underlying implied by put-call parity, C - P = S e^{-qT} - K e^{-rT}, from call/put pairs of
    one expiry (same strikes): the median over the pairs nearest the money, or None with no pair."""
    c, p, k, t = (np.asarray(a, dtype=float) for a in (call_mid, put_mid, strike, t))
    ok = np.isfinite(c) & np.isfinite(p) & (c > 0) & (p > 0) & (t > 0)
    if not ok.any():
        return None
    c, p, k, t = c[ok], p[ok], k[ok], t[ok]
    s = (c - p + k * np.exp(-r * t)) * np.exp(q * t)
    near = np.argsort(np.abs(c - p))[:5]  # at the money calls and puts cost the same
    return float(np.median(s[near]))


def fill_iv_by_strike(expiry_key: np.ndarray, strike: np.ndarray, iv: np.ndarray) -> np.ndarray:
    """Missing IVs (NaN) from the valid IVs of the same expiry, linear in strike and flat beyond the
    outermost quoted strikes; NaN stays where an expiry has no valid IV at all."""
    out = iv.astype(float).copy()
    missing = ~np.isfinite(out)
    if not missing.any():
        return out
    order = np.argsort(expiry_key, kind="stable")
    sorted_keys = expiry_key[order]
    bounds = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:]):  # one pass per expiry, each on its own slice
        idx = order[lo:hi]
        miss = missing[idx]
        if not miss.any() or miss.all():
            continue
        have = idx[~miss]
        ks, inv = np.unique(strike[have], return_inverse=True)
        vs = np.bincount(inv, out[have], ks.size) / np.bincount(inv, None, ks.size)
        need = idx[miss]
        out[need] = np.interp(strike[need], ks, vs)
    return out
