"""A seeded, reproducible synthetic market on the real NYSE calendar.

The only place in gexhistory where random numbers live. Every bar it yields is labelled
`synthetic`. Stylized facts it reproduces: volatility clustering and the leverage effect
(GJR-GARCH), fat-tailed daily returns (Student-t, 5 degrees of freedom), overnight gaps
(a fifth of daily variance), a U-shaped intraday volatility and volume profile, coherent OHLC
(low <= open, close <= high) built from the minute path itself, and per-symbol price levels.

The path always starts at EPOCH and is drawn session by session, so the price of any date is the
same whatever window is asked for (a 30-day run and a 10-year run agree on shared dates).
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gexhistory.calendar import Session, sessions_between
from gexhistory.errors import BadInput
from gexhistory.sources.base import MINUTES_PER_SESSION, DailyBars, MinuteBars

EPOCH = dt.date(2000, 1, 3)
ANCHOR = dt.date(2025, 1, 2)  # the synthetic price equals the symbol's level on this date

# Approximate early-2025 levels and long-run annual volatilities; unknown symbols get a
# deterministic level from their name and an individual-stock volatility.
LEVELS = {
    "SPY": 585.0, "QQQ": 510.0, "IWM": 220.0, "DIA": 425.0, "SPX": 5870.0, "I:SPX": 5870.0,
    "NDX": 21000.0, "I:NDX": 21000.0, "RUT": 2200.0, "I:RUT": 2200.0, "AAPL": 245.0,
    "MSFT": 420.0, "NVDA": 138.0, "TSLA": 380.0, "AMZN": 220.0, "META": 600.0, "GOOGL": 190.0,
}
ANNUAL_VOL = {
    "SPY": 0.17, "SPX": 0.17, "I:SPX": 0.17, "DIA": 0.16, "QQQ": 0.22, "NDX": 0.22, "I:NDX": 0.22,
    "IWM": 0.24, "RUT": 0.24, "I:RUT": 0.24,
}
BASE_VOLUME = {"SPY": 75e6, "QQQ": 45e6, "IWM": 30e6, "DIA": 4e6}
ANNUAL_DRIFT = 0.07
OVERNIGHT_VAR_SHARE = 0.2
T_DOF = 5.0
GARCH_ALPHA, GARCH_GAMMA, GARCH_BETA = 0.0, 0.17, 0.895  # persistence 0.98, as S&P 500 fits
EARLY_CLOSE_MINUTES = 210


def symbol_level(symbol: str) -> float:
    if symbol in LEVELS:
        return LEVELS[symbol]
    return 20.0 + (zlib.crc32(symbol.encode()) % 48000) / 100.0


def symbol_vol(symbol: str) -> float:
    return ANNUAL_VOL.get(symbol, 0.32)


@dataclass(frozen=True)
class _Path:
    sessions: tuple[Session, ...]
    minute_open: np.ndarray  # (n, 390), NaN after an early close
    minute_close: np.ndarray
    minute_volume: np.ndarray
    day_open: np.ndarray
    day_high: np.ndarray
    day_low: np.ndarray
    day_close: np.ndarray
    day_volume: np.ndarray


def _intraday_weights(minutes: int) -> np.ndarray:
    m = np.arange(minutes, dtype=float)
    w = 1.0 + 2.0 * np.exp(-m / 20.0) + 1.0 * np.exp(-(minutes - 1 - m) / 25.0)
    return w / w.sum()


@lru_cache(maxsize=8)
def _generate(symbol: str, seed: int, through: dt.date) -> _Path:
    sessions = tuple(sessions_between(EPOCH, max(through, ANCHOR)))
    n = len(sessions)
    root = np.random.SeedSequence([seed, zlib.crc32(symbol.encode())])
    g_daily, g_gap, g_minute, g_volume = (np.random.default_rng(s) for s in root.spawn(4))

    # Each stream is drawn in one call of length n so a longer path extends a shorter one.
    e = g_daily.standard_t(T_DOF, n) / np.sqrt(T_DOF / (T_DOF - 2.0))
    gap = g_gap.standard_normal(n)
    z = g_minute.standard_normal((n, MINUTES_PER_SESSION))
    vol_noise = g_volume.standard_normal(n)

    sig_lr = symbol_vol(symbol) / np.sqrt(252.0)
    persistence = GARCH_ALPHA + GARCH_GAMMA / 2 + GARCH_BETA
    omega = sig_lr**2 * (1.0 - persistence)
    h = np.empty(n)
    h_t = sig_lr**2
    for i in range(n):
        h[i] = h_t
        r2 = h_t * e[i] * e[i]
        h_t = omega + (GARCH_ALPHA + (GARCH_GAMMA if e[i] < 0 else 0.0)) * r2 + GARCH_BETA * h_t

    sd = np.sqrt(h)
    mu = ANNUAL_DRIFT / 252.0 - 0.5 * h
    f = OVERNIGHT_VAR_SHARE
    # The day's shock e splits into an overnight gap and an intraday part with unit variance.
    intraday_end = (e - np.sqrt(f) * gap) / np.sqrt(1.0 - f)

    minute_log = np.full((n, MINUTES_PER_SESSION), np.nan)
    minute_vol_share = np.full((n, MINUTES_PER_SESSION), np.nan)
    early = np.array([s.early_close for s in sessions])
    for is_early, minutes in ((False, MINUTES_PER_SESSION), (True, EARLY_CLOSE_MINUTES)):
        rows = np.flatnonzero(early == is_early)
        if rows.size == 0:
            continue
        w = _intraday_weights(minutes)
        a = np.sqrt(w)
        walk = np.cumsum(z[rows, :minutes] * a, axis=1)
        share = np.cumsum(w)
        # Brownian bridge: pin the walk's end to the day's intraday shock, keeping the U-shaped variance.
        bridge = walk + (intraday_end[rows] - walk[:, -1])[:, None] * share[None, :]
        minute_log[rows, :minutes] = (
            mu[rows, None] * (1 - f) * share[None, :] + (sd[rows] * np.sqrt(1 - f))[:, None] * bridge
        )
        minute_vol_share[rows, :minutes] = w

    overnight = mu * f + sd * np.sqrt(f) * gap
    day_ret = overnight + minute_log[np.arange(n), np.where(early, EARLY_CLOSE_MINUTES, MINUTES_PER_SESSION) - 1]
    log_close = np.cumsum(day_ret)
    log_open = log_close - day_ret + overnight
    anchor_idx = next(i for i, s in enumerate(sessions) if s.date >= ANCHOR)
    shift = np.log(symbol_level(symbol)) - log_close[anchor_idx]
    log_open += shift
    log_close += shift

    m_close = np.exp(log_open[:, None] + minute_log)
    m_open = np.empty_like(m_close)
    m_open[:, 0] = np.exp(log_open)
    m_open[:, 1:] = m_close[:, :-1]
    m_open[np.isnan(m_close)] = np.nan
    m_close = np.round(m_close, 2)
    m_open = np.round(m_open, 2)

    base = BASE_VOLUME.get(symbol, 8e6)
    day_volume = np.round(base * (sd / sig_lr) ** 0.9 * (1.0 + 0.4 * np.abs(e)) * np.exp(0.2 * vol_noise))
    m_volume = np.round(minute_vol_share * day_volume[:, None])

    day_open = m_open[:, 0]
    day_close = m_close[np.arange(n), np.where(early, EARLY_CLOSE_MINUTES, MINUTES_PER_SESSION) - 1]
    day_high = np.fmax(np.nanmax(m_close, axis=1), day_open)
    day_low = np.fmin(np.nanmin(m_close, axis=1), day_open)
    return _Path(sessions, m_open, m_close, m_volume, day_open, day_high, day_low, day_close, day_volume)


class SyntheticMarket:
    """PriceSource that invents a plausible market; every row it feeds is labelled synthetic."""

    name = "synthetic"
    is_synthetic = True

    def __init__(self, seed: int = 42):
        self.seed = int(seed)

    def _path(self, symbol: str, through: dt.date) -> _Path:
        return _generate(symbol, self.seed, through)

    def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> DailyBars:
        if start < EPOCH:
            raise BadInput(f"the synthetic market starts on {EPOCH}; got start {start}")
        p = self._path(symbol, end)
        dates = [s.date for s in p.sessions]
        lo = next((i for i, d in enumerate(dates) if d >= start), len(dates))
        hi = next((i for i, d in enumerate(dates) if d > end), len(dates))
        sl = slice(lo, hi)
        return DailyBars(
            symbol, dates[sl], p.day_open[sl].copy(), p.day_high[sl].copy(), p.day_low[sl].copy(),
            p.day_close[sl].copy(), p.day_volume[sl].copy(), self.name,
        )

    def minute_bars(self, symbol: str, sessions: list[Session]) -> MinuteBars:
        if not sessions:
            empty = np.empty((0, MINUTES_PER_SESSION))
            return MinuteBars(symbol, [], empty, empty.copy(), empty.copy(), self.name)
        p = self._path(symbol, sessions[-1].date)
        pos = {s.date: i for i, s in enumerate(p.sessions)}
        rows = np.array([pos[s.date] for s in sessions])
        return MinuteBars(
            symbol, list(sessions), p.minute_open[rows], p.minute_close[rows], p.minute_volume[rows], self.name,
        )

    def vix_bars(self, start: dt.date, end: dt.date) -> DailyBars | None:
        return None  # no synthetic VIX: callers use the model's labelled IV proxy instead
