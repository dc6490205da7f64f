"""Black-Scholes gamma, vectorised over contracts (and hypothetical spots by broadcasting)."""

from __future__ import annotations

import numpy as np

SECONDS_PER_YEAR = 365.0 * 86400.0
MIN_T_YEARS = 60.0 / SECONDS_PER_YEAR  # one minute: gamma at the bell is finite, not infinite
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def bs_gamma(spot, strike, t_years, iv, r: float = 0.0, q: float = 0.0) -> np.ndarray:
    """d2V/dS2 of a European option (same for calls and puts): e^{-qT} n(d1) / (S sigma sqrt T)."""
    spot = np.asarray(spot, dtype=float)
    t = np.maximum(np.asarray(t_years, dtype=float), MIN_T_YEARS)
    iv = np.asarray(iv, dtype=float)
    vol_sqrt_t = iv * np.sqrt(t)
    d1 = (np.log(spot / strike) + (r - q + 0.5 * iv * iv) * t) / vol_sqrt_t
    return np.exp(-q * t - 0.5 * d1 * d1) * _INV_SQRT_2PI / (spot * vol_sqrt_t)


def dollar_gamma_per_pct(gamma, open_interest, spot, multiplier: float = 100.0) -> np.ndarray:
    """Dollars of delta change per 1% move: gamma x OI x multiplier x S^2 x 0.01."""
    spot = np.asarray(spot, dtype=float)
    return gamma * open_interest * multiplier * spot * spot * 0.01
