"""What a chain file implies when it does not say it: IV from an option's price, the underlying from
put-call parity, and IVs interpolated across strikes of one expiry. Pure numpy, no I/O."""

from __future__ import annotations

import numpy as np


def _norm_cdf(x):
    from scipy.special import ndtr  # lazy: 0.27 s of imports, paid only when a price must give an IV

    return ndtr(x)


def bs_price(spot, strike, t, iv, r: float, q: float, is_call) -> np.ndarray:
    spot, strike, t, iv = (np.asarray(a, dtype=float) for a in (spot, strike, t, iv))
    vst = iv * np.sqrt(t)
    d1 = (np.log(spot / strike) + (r - q + 0.5 * iv * iv) * t) / vst
    d2 = d1 - vst
    fwd_s, disc_k = spot * np.exp(-q * t), strike * np.exp(-r * t)
    call = fwd_s * _norm_cdf(d1) - disc_k * _norm_cdf(d2)
    return np.where(is_call, call, call - fwd_s + disc_k)  # put by put-call parity


def implied_vol(price, spot, strike, t, r: float, q: float, is_call, lo: float = 0.01, hi: float = 5.0,
                iterations: int = 45) -> np.ndarray:
    """Black-Scholes IV by vectorised bisection (price is monotone in vol); NaN where the price is
    outside what any vol in [lo, hi] gives (below intrinsic, above the bound) or inputs are unusable."""
    price, spot, strike, t = (np.asarray(a, dtype=float) for a in (price, spot, strike, t))
    is_call = np.asarray(is_call, dtype=bool)
    ok = np.isfinite(price) & (price > 0) & (t > 0) & np.isfinite(spot) & (spot > 0) & (strike > 0)
    a = np.full(price.shape, lo)
    b = np.full(price.shape, hi)
    s, k, tt = np.where(ok, spot, 1.0), np.where(ok, strike, 1.0), np.where(ok, t, 1.0)
    p_lo = bs_price(s, k, tt, a, r, q, is_call)
    p_hi = bs_price(s, k, tt, b, r, q, is_call)
    ok &= (price >= p_lo) & (price <= p_hi)
    for _ in range(iterations):  # 45 halvings of [0.01, 5]: ~1e-13, far below any quote's precision
        mid = 0.5 * (a + b)
        above = bs_price(s, k, tt, mid, r, q, is_call) > price
        b = np.where(above, mid, b)
        a = np.where(above, a, mid)
    return np.where(ok, 0.5 * (a + b), np.nan)


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
