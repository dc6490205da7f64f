"""Black-Scholes gamma: the one formula every GEX number of gexhistory comes from.

    gamma = e^{-qT} n(d1) / (S sigma sqrt T),   d1 = (ln(S/K) + (r - q + sigma^2/2) T) / (sigma sqrt T),

n the standard normal density, T in years (calendar time), floored at one minute. `bs_gamma` is the
definition, evaluated in the textbook's order of operations. The exposure engine (engine/exposure.py)
evaluates the same formula for millions of (snapshot, position) pairs from the same pieces: `d1` and
`gaussian` below, and `gamma_from_parts`, which multiplies the factors bs_gamma multiplies with the ones
an expiry shares (e^{-qT}, sigma sqrt T) computed once per expiry. tests/test_greeks.py holds the two
orders to each other (a few units in the last place) and bs_gamma to closed forms. The flip search's
profile (engine/flip.py) is S x the same sum, with S cancelled.
"""

from __future__ import annotations

import numpy as np

SECONDS_PER_YEAR = 365.0 * 86400.0
MIN_T_YEARS = 60.0 / SECONDS_PER_YEAR  # one minute: gamma at the bell is finite, not infinite
SQRT_2PI = float(np.sqrt(2.0 * np.pi))
INV_SQRT_2PI = 1.0 / SQRT_2PI


def d1(log_moneyness, t, iv, vol_sqrt_t, r: float, q: float, out: np.ndarray | None = None):
    """(ln(S/K) + (r - q + iv^2/2) t) / (iv sqrt t), from ln(S/K) and iv sqrt t; `out` may be the
    log-moneyness array itself (it is then overwritten)."""
    out = np.add(log_moneyness, (r - q + 0.5 * iv * iv) * t, out=out)
    if out.ndim == 0:
        return out / vol_sqrt_t
    out /= vol_sqrt_t
    return out


def gaussian(d, out: np.ndarray | None = None):
    """exp(-d^2 / 2): the standard normal density without its 1 / sqrt(2 pi). `out` may be `d` itself
    (it is then overwritten)."""
    if out is None:
        out = -0.5 * d * d
        return np.exp(out, out=out) if isinstance(out, np.ndarray) else np.exp(out)
    np.multiply(d, d, out=out)
    out *= -0.5  # (d d) (-1/2) is (-d/2) d to the last bit: scaling by a power of two is exact
    return np.exp(out, out=out)


def bs_gamma(spot, strike, t_years, iv, r: float = 0.0, q: float = 0.0) -> np.ndarray:
    """d2V/dS2 of a European option (the same for calls and puts), vectorised by broadcasting."""
    spot = np.asarray(spot, dtype=float)
    t = np.maximum(np.asarray(t_years, dtype=float), MIN_T_YEARS)
    iv = np.asarray(iv, dtype=float)
    sqrt_t = np.sqrt(t)
    d = d1(np.log(spot / strike), t, iv, iv * sqrt_t, r, q)
    return np.exp(-q * t) * gaussian(d) / SQRT_2PI / (spot * iv * sqrt_t)


def gamma_from_parts(gauss: np.ndarray, discount, spot_vol_sqrt_t, out: np.ndarray | None = None) -> np.ndarray:
    """bs_gamma from its factors: e^{-qT} (`discount`) x gaussian(d1) / sqrt(2 pi) / (S sigma sqrt T).
    `out` may be `gauss` itself (it is then overwritten)."""
    out = np.multiply(discount, gauss, out=out)
    out *= INV_SQRT_2PI
    out /= spot_vol_sqrt_t
    return out


def dollar_gamma_per_pct(gamma, open_interest, spot, multiplier: float = 100.0) -> np.ndarray:
    """Dollars of delta change per 1% move: gamma x OI x multiplier x S^2 x 0.01."""
    spot = np.asarray(spot, dtype=float)
    return gamma * open_interest * multiplier * spot * spot * 0.01
