"""The modelled implied-volatility surface: what the chain model prices its contracts with, and what
a chain whose source carries open interest but no implied vol (Massive's daily open interest) is
priced with: one surface, in one place.

- ATM level known at a session's close: 20-session realised vol times ModelParams.iv_premium (the
  long-run level before 20 returns exist), never below 5%;
- term structure: from that level towards ModelParams.iv_long_run with an e-folding of iv_term_days;
- skew: per standardised unit of moneyness m = ln(K/S) / (term vol x sqrt(T)), IV = term x (1 +
  skew_slope m + skew_curve m^2), clipped to 5%..300%.

A session's chain uses the level and the spot of the session before it: the surface as known at
the open, like the open interest.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gexhistory.engine.params import ModelParams

IV_FLOOR, IV_CAP = 0.05, 3.0
RV_WINDOW = 20


def realised_vol(close: np.ndarray, window: int = RV_WINDOW) -> np.ndarray:
    """Annualised vol of the `window` log returns ending at each session (NaN before that).

    Each window is summed on its own (no running cumsum): a value must not depend, even in its last
    bit, on where the price series starts, or the chain of a date would depend on the run's window.
    """
    r = np.diff(np.log(close), prepend=np.nan)
    out = np.full(close.size, np.nan)
    if close.size > window:
        sq = np.nan_to_num(r * r)
        out[window:] = np.sqrt(sliding_window_view(sq, window)[1:].sum(axis=1) / window * 252.0)
    return out


def atm_level_at_close(close: np.ndarray, p: ModelParams, rv: np.ndarray | None = None) -> np.ndarray:
    """Per session of a daily close series: the ATM implied vol known at its close."""
    rv = realised_vol(close) if rv is None else rv
    return np.maximum(IV_FLOOR, np.where(np.isfinite(rv), rv, p.iv_long_run) * p.iv_premium)


def term_level(p: ModelParams, level: np.ndarray, dte_days: np.ndarray) -> np.ndarray:
    """The ATM vol of an expiry `dte_days` calendar days away, from the ATM `level` of the session before."""
    return p.iv_long_run + (level - p.iv_long_run) * np.exp(-dte_days / p.iv_term_days)


def sd_per_log(term: np.ndarray, dte_days: np.ndarray) -> np.ndarray:
    """1 / (term vol x sqrt(T)): log moneyness times this is moneyness in standard deviations (T at
    least half a day and a week's floor, so a contract on its last day is not infinitely skewed)."""
    return 1.0 / (term * np.sqrt(np.maximum(np.maximum(dte_days, 0.5) / 365.0, 7 / 365)))


def skewed(p: ModelParams, term: np.ndarray, m: np.ndarray) -> np.ndarray:
    """IV from the term vol and moneyness in standard deviations `m`, term broadcast against m. One new
    array, worked in place: the chain model calls it on (expiry, strike) grids of millions of cells."""
    iv = m * p.skew_curve
    iv += p.skew_slope
    iv *= m
    iv += 1.0
    iv *= term
    np.clip(iv, IV_FLOOR, IV_CAP, out=iv)
    return iv


def contract_ivs(p: ModelParams, level: float, spot: float, dte_days: np.ndarray, strike: np.ndarray) -> np.ndarray:
    """Per contract of one chain: the modelled IV, from the ATM `level` and the `spot` of the session
    before the chain's and each contract's calendar days to expiry (from the chain's date)."""
    dte = np.asarray(dte_days, dtype=float)
    term = term_level(p, np.float64(level), dte)
    m = np.log(np.asarray(strike, dtype=float))
    m -= np.log(spot)
    m *= sd_per_log(term, dte)
    return skewed(p, term, m)
