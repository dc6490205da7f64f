"""Multi-timeframe Wilder RSI(14), the weighted RSI score, aligned extremes and coiling (docs/computation.md#signals).

RSI of a series is Wilder's: the first average gain/loss is the simple mean of the first 14 changes,
then avg <- avg * 13/14 + change / 14; RSI = 100 * G / (G + L), which is 100 when the average loss is 0.

Each value is computed over a fixed look-back of the last RSI_LOOKBACK bars ending at the signal
time, seeded at the start of that look-back. That makes a session's RSI the same whatever window a
run asked for (a 7-day run and a 10-year run agree), and it costs one dot product per session: the
final Wilder average of n changes is a fixed linear combination of them (weights below), so every
session of a run is one matrix product per timeframe.
"""

from __future__ import annotations

import numpy as np

RSI_PERIOD = 14
RSI_LOOKBACK = 100  # bars; the seed's weight in the final average is (13/14)^85 < 0.2%
# 4h bars come two a session: a 40-bar look-back (seed weight (13/14)^25 = 16%) keeps the minute
# warm-up at 22 sessions, so a month's run still fits one provider request of minutes.
LOOKBACK = {"5m": RSI_LOOKBACK, "15m": RSI_LOOKBACK, "1h": RSI_LOOKBACK, "4h": 40, "1d": RSI_LOOKBACK}
TIMEFRAMES = ("5m", "15m", "1h", "4h", "1d")
WEIGHTS = {"5m": 0.10, "15m": 0.15, "1h": 0.20, "4h": 0.25, "1d": 0.30}
BAR_MINUTES = {"5m": 5, "15m": 15, "1h": 60, "4h": 240}
OVERBOUGHT, OVERSOLD = 70.0, 30.0
COIL_EXTREMES = 3
COIL_RANGE_RATIO = 0.7
# Minute bars needed before the first signal session so every intraday series has its full look-back
# (4h: 2 bars a session, 1 on early closes; 1h: 7 a session).
WARMUP_SESSIONS = 22


def wilder_weights(n_changes: int, period: int = RSI_PERIOD) -> np.ndarray:
    """w such that Wilder's final average of `n_changes` changes x is w @ x (n_changes >= period)."""
    d = 1.0 - 1.0 / period
    w = np.empty(n_changes)
    w[:period] = d ** (n_changes - period) / period
    j = np.arange(period, n_changes)
    w[period:] = d ** (n_changes - 1 - j) / period
    return w


def rsi_at(close, ends, period: int = RSI_PERIOD, lookback: int = RSI_LOOKBACK) -> np.ndarray:
    """RSI of close[e - lookback + 1 .. e] for each index e of `ends` (fewer closes at the series'
    start); NaN where fewer than period + 1 closes exist. `close` must be finite."""
    close = np.asarray(close, dtype=float)
    ends = np.asarray(ends, dtype=int)
    out = np.full(ends.shape, np.nan)
    if close.size < 2 or ends.size == 0:
        return out
    delta = np.diff(close)
    gains, losses = np.maximum(delta, 0.0), np.maximum(-delta, 0.0)
    n_changes = np.minimum(ends, lookback - 1)  # changes delta[e-n .. e-1] end at close[e]
    for n in np.unique(n_changes[n_changes >= period]):
        sel = n_changes == n
        w = wilder_weights(int(n), period)
        idx = ends[sel][:, None] - n + np.arange(n)[None, :]
        # Row-wise sums, not a matrix product: BLAS would round differently with the batch size, and
        # a session's RSI must not depend on how many sessions a run computed.
        g, lo = (gains[idx] * w).sum(axis=1), (losses[idx] * w).sum(axis=1)
        total = g + lo
        out[sel] = np.where(lo == 0, 100.0, 100.0 * g / np.where(total == 0, 1.0, total))
    return out


def intraday_bar_closes(minute_close: np.ndarray, minutes_per_bar: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample regular-hours minute closes (sessions x minutes, NaN where none) into bars anchored
    at the open: the close of a bar is its last traded minute. Returns the bars in time order and the
    session row of each; bars with no traded minute (after an early close) do not exist."""
    n, m = minute_close.shape
    nb = -(-m // minutes_per_bar)
    padded = np.full((n, nb * minutes_per_bar), np.nan)
    padded[:, :m] = minute_close
    x = padded.reshape(n, nb, minutes_per_bar)
    valid = ~np.isnan(x)
    has = valid.any(axis=2)
    last = minutes_per_bar - 1 - np.argmax(valid[:, :, ::-1], axis=2)
    vals = np.take_along_axis(x, last[:, :, None], axis=2)[:, :, 0]
    rows = np.broadcast_to(np.arange(n)[:, None], (n, nb))
    return vals[has], rows[has]


def session_end_rsi(minute_close: np.ndarray, minutes_per_bar: int, lookback: int = RSI_LOOKBACK) -> np.ndarray:
    """RSI of the `minutes_per_bar` series at the last bar of each session row (NaN if none)."""
    closes, rows = intraday_bar_closes(minute_close, minutes_per_bar)
    n = minute_close.shape[0]
    out = np.full(n, np.nan)
    if closes.size == 0:
        return out
    last = np.searchsorted(rows, np.arange(n), side="right") - 1
    ok = (last >= 0) & (rows[np.maximum(last, 0)] == np.arange(n))
    out[ok] = rsi_at(closes, last[ok], lookback=lookback)
    return out


def rsi_score(rsi: dict[str, np.ndarray]) -> np.ndarray:
    """sum w * (RSI - 50) * 2 over the timeframes with a value, weights renormalised over them;
    NaN when no timeframe has one. In [-100, 100]."""
    num = den = 0.0
    for tf in TIMEFRAMES:
        v = rsi.get(tf)
        if v is None:
            continue
        ok = np.isfinite(v)
        num = num + np.where(ok, WEIGHTS[tf] * (np.nan_to_num(v) - 50.0) * 2.0, 0.0)
        den = den + np.where(ok, WEIGHTS[tf], 0.0)
    den = np.asarray(den, dtype=float)
    score = np.asarray(num) / np.where(den > 0, den, 1.0)
    # Renormalising can round one ulp past the bounds (all present timeframes at 0 or 100).
    return np.where(den > 0, np.clip(score, -100.0, 100.0), np.nan)


def aligned_counts(rsi: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """How many timeframes are overbought (> 70) and oversold (< 30)."""
    vals = [np.asarray(rsi[tf], dtype=float) for tf in TIMEFRAMES if tf in rsi]
    stack = np.vstack(vals) if vals else np.empty((0, 0))
    with np.errstate(invalid="ignore"):
        return (stack > OVERBOUGHT).sum(axis=0), (stack < OVERSOLD).sum(axis=0)


def range_contraction(high, low, close, short: int = 5, long: int = 20) -> np.ndarray:
    """Mean daily range (high - low) / close over the last `short` sessions divided by its mean over the
    last `long` (both ending at each index); NaN without `long` sessions or without real ranges."""
    rng = (np.asarray(high, float) - np.asarray(low, float)) / np.asarray(close, float)
    c = np.concatenate([[0.0], np.cumsum(rng)])
    out = np.full(rng.size, np.nan)
    if rng.size >= long:
        i = np.arange(long - 1, rng.size)
        m_short = (c[i + 1] - c[i + 1 - short]) / short
        m_long = (c[i + 1] - c[i + 1 - long]) / long
        out[i] = np.where(m_long > 0, m_short / np.where(m_long > 0, m_long, 1.0), np.nan)
    return out


def coiling(overbought: np.ndarray, oversold: np.ndarray, contraction: np.ndarray) -> np.ndarray:
    """>= 3 aligned extremes and the 5-day mean range under 0.7 x the 20-day mean."""
    with np.errstate(invalid="ignore"):
        return (np.maximum(overbought, oversold) >= COIL_EXTREMES) & (contraction < COIL_RANGE_RATIO)


def volume_ratio(volume, window: int = 20) -> np.ndarray:
    """Each day's volume over the mean of the previous `window` days (NaN without them)."""
    v = np.asarray(volume, dtype=float)
    c = np.concatenate([[0.0], np.cumsum(v)])
    out = np.full(v.size, np.nan)
    if v.size > window:
        i = np.arange(window, v.size)
        mean = (c[i] - c[i - window]) / window
        out[i] = np.where(mean > 0, v[i] / np.where(mean > 0, mean, 1.0), np.nan)
    return out
