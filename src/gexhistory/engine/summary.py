"""A day's gamma summary, derived only from that day's snapshots, and the price-GEX correlation."""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

CORR_WINDOW = 20


def _pct(change: float | None, base: float | None) -> float | None:
    if change is None or base is None or base == 0:
        return None
    return change / abs(base) * 100.0


def daily_summary(net_gex: list[float], flips: list[float | None], spots: list[float], ivs: list[float | None]) -> dict:
    """open/close = first/last snapshot, high/low = max/min, changes, average IV, count."""
    open_gex, close_gex = net_gex[0], net_gex[-1]
    open_flip, close_flip = flips[0], flips[-1]
    flip_change = close_flip - open_flip if open_flip is not None and close_flip is not None else None
    iv_known = [v for v in ivs if v is not None]
    return {
        "open_gex": open_gex,
        "close_gex": close_gex,
        "high_gex": max(net_gex),
        "low_gex": min(net_gex),
        "gex_change": close_gex - open_gex,
        "gex_change_pct": _pct(close_gex - open_gex, open_gex),
        "open_flip": open_flip,
        "close_flip": close_flip,
        "flip_change": flip_change,
        "flip_change_pct": _pct(flip_change, open_flip),
        "open_price": spots[0],
        "close_price": spots[-1],
        "price_change_pct": _pct(spots[-1] - spots[0], spots[0]),
        "avg_iv": sum(iv_known) / len(iv_known) if iv_known else None,
        "snapshots_count": len(net_gex),
    }


def rolling_price_gex_corr(close_price: np.ndarray, close_gex: np.ndarray, window: int = CORR_WINDOW) -> np.ndarray:
    """Pearson correlation of daily price returns and daily close-GEX changes over the last `window`
    sessions, ending at each session; NaN where fewer than `window` changes exist or one side is flat."""
    close_price = np.asarray(close_price, dtype=float)
    close_gex = np.asarray(close_gex, dtype=float)
    out = np.full(close_price.size, np.nan)
    if close_price.size <= window:
        return out
    out[window:] = window_corr(sliding_window_view(close_price, window + 1), sliding_window_view(close_gex, window + 1))
    return out


def window_corr(prices: np.ndarray, gex: np.ndarray) -> np.ndarray:
    """Per row (window + 1 consecutive session closes): the price-return / GEX-change correlation."""
    dp = np.diff(prices, axis=1) / prices[:, :-1]
    dg = np.diff(gex, axis=1)
    a = dp - dp.mean(axis=1, keepdims=True)
    b = dg - dg.mean(axis=1, keepdims=True)
    sa, sb = dp.std(axis=1), dg.std(axis=1)
    flat = (sa == 0) | (sb == 0)
    with np.errstate(all="ignore"):
        return np.where(flat, np.nan, (a * b).mean(axis=1) / np.where(flat, 1.0, sa * sb))


def none_if_nan(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x
