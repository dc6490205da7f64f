"""A seeded, reproducible synthetic market on the real NYSE calendar.

The only place in gexhistory where random numbers live. Every bar it yields is labelled
`synthetic`. Stylized facts it reproduces: volatility clustering and the leverage effect
(GJR-GARCH), fat-tailed daily returns (Student-t, 5 degrees of freedom), overnight gaps
(a fifth of daily variance), a U-shaped intraday volatility and volume profile, coherent OHLC
(low <= open, close <= high) built from the minute path itself, and per-symbol price levels.

Window independence, to the last bit, comes from two layers:
- the daily path (GARCH variance, daily shocks, overnight gaps, volumes, hence every open and close)
  starts at EPOCH and is drawn over every session of the calendar in one call per stream, so a
  session's open and close never depend on the window asked;
- a session's minute path is a Brownian bridge from its open to its close whose shocks come from a
  stream of their own per block of BLOCK_SESSIONS sessions since EPOCH, keyed by (seed, symbol,
  block). Only the blocks a request touches are drawn (a 10-year run never builds the minutes of
  the decade before it), and a session's minutes, high and low are the same whichever requests, in
  whichever order, size or process, produced them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import zlib
from functools import lru_cache

import numpy as np

from gexhistory.calendar import Session, sessions_between
from gexhistory.errors import BadInput
from gexhistory.sources import labels
from gexhistory.sources.base import (
    MINUTES_PER_SESSION,
    DailyBars,
    MinuteBars,
    PriceSource,
)

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
BLOCK_SESSIONS = 64  # sessions per minute-shock stream: small enough that a short run draws little
# Children of the symbol's SeedSequence; the minute streams are the children of child 2, one per block.
DAILY_STREAM, GAP_STREAM, MINUTE_STREAM, VOLUME_STREAM = range(4)


def symbol_level(symbol: str) -> float:
    if symbol in LEVELS:
        return LEVELS[symbol]
    return 20.0 + (zlib.crc32(symbol.encode()) % 48000) / 100.0


def symbol_vol(symbol: str) -> float:
    return ANNUAL_VOL.get(symbol, 0.32)


def _intraday_weights(minutes: int) -> np.ndarray:
    m = np.arange(minutes, dtype=float)
    w = 1.0 + 2.0 * np.exp(-m / 20.0) + 1.0 * np.exp(-(minutes - 1 - m) / 25.0)
    return w / w.sum()


@lru_cache(maxsize=2)
def _intraday_profile(minutes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per minute: its share of the session's variance and volume, the square root, the running share."""
    w = _intraday_weights(minutes)
    return w, np.sqrt(w), np.cumsum(w)


def _garch_variance(e: np.ndarray, sig_lr: float) -> np.ndarray:
    """GJR-GARCH(1,1) variance of each session, given the standardised daily shocks; starts at the
    long-run variance on EPOCH. Plain floats: the recursion is sequential and 7,000 steps long."""
    persistence = GARCH_ALPHA + GARCH_GAMMA / 2 + GARCH_BETA
    omega = sig_lr**2 * (1.0 - persistence)
    h, h_t = [], sig_lr**2
    for x in e.tolist():
        h.append(h_t)
        r2 = h_t * x * x
        h_t = omega + (GARCH_ALPHA + (GARCH_GAMMA if x < 0 else 0.0)) * r2 + GARCH_BETA * h_t
    return np.array(h)


class _Path:
    """One symbol's path under one seed: the daily path of every calendar session since EPOCH, built
    at once, and the minute closes (with high and low) of the blocks drawn so far, built on demand."""

    def __init__(self, symbol: str, seed: int):
        sessions = sessions_between(EPOCH, dt.date.max)
        self.dates = [s.date for s in sessions]
        self.row_of = {d: i for i, d in enumerate(self.dates)}
        n = len(sessions)
        self.early = np.array([s.early_close for s in sessions])
        self.entropy = [seed, zlib.crc32(symbol.encode())]
        streams = np.random.SeedSequence(self.entropy).spawn(4)
        g_daily, g_gap, g_volume = (np.random.default_rng(streams[k]) for k in (DAILY_STREAM, GAP_STREAM, VOLUME_STREAM))

        # Each stream is drawn in one call over all sessions: a session's shock is its position's draw.
        e = g_daily.standard_t(T_DOF, n) / np.sqrt(T_DOF / (T_DOF - 2.0))
        gap = g_gap.standard_normal(n)
        vol_noise = g_volume.standard_normal(n)

        sig_lr = symbol_vol(symbol) / np.sqrt(252.0)
        h = _garch_variance(e, sig_lr)
        self.sd = np.sqrt(h)
        self.mu = ANNUAL_DRIFT / 252.0 - 0.5 * h
        f = OVERNIGHT_VAR_SHARE
        # The day's shock e splits into an overnight gap and an intraday part with unit variance.
        self.intraday_shock = (e - np.sqrt(f) * gap) / np.sqrt(1.0 - f)
        self.intraday = self.mu * (1 - f) + self.sd * np.sqrt(1 - f) * self.intraday_shock  # log open -> close
        overnight = self.mu * f + self.sd * np.sqrt(f) * gap
        log_close = np.cumsum(overnight + self.intraday)
        anchor = bisect.bisect_left(self.dates, ANCHOR)
        log_close += np.log(symbol_level(symbol)) - log_close[anchor]
        self.log_open = log_close - self.intraday
        self.open = np.round(np.exp(self.log_open), 2)
        # The last minute's close is computed by these very operations, so it equals the day's close.
        self.close = np.round(np.exp(self.log_open + self.intraday), 2)
        base = BASE_VOLUME.get(symbol, 8e6)
        self.volume = np.round(base * (self.sd / sig_lr) ** 0.9 * (1.0 + 0.4 * np.abs(e)) * np.exp(0.2 * vol_noise))

        self.high = np.full(n, np.nan)
        self.low = np.full(n, np.nan)
        # Untouched pages of np.empty cost nothing: only the drawn blocks' rows are ever written.
        self.minute_close = np.empty((n, MINUTES_PER_SESSION))
        self.drawn = np.zeros(-(-n // BLOCK_SESSIONS), dtype=bool)

    def rows(self, sessions: list[Session]) -> np.ndarray:
        return np.array([self.row_of[s.date] for s in sessions], dtype=np.intp)

    def ensure_minutes(self, rows: np.ndarray) -> None:
        """Draw the minute paths of every block holding one of `rows` that is not drawn yet."""
        wanted = np.zeros_like(self.drawn)
        wanted[rows // BLOCK_SESSIONS] = True
        n = len(self.dates)
        for b in np.flatnonzero(wanted & ~self.drawn).tolist():
            # One block at a time: its arrays stay in cache, and its rows are computed in the same
            # shapes whatever else is drawn with it.
            lo, hi = b * BLOCK_SESSIONS, min(n, (b + 1) * BLOCK_SESSIONS)
            seq = np.random.SeedSequence(self.entropy, spawn_key=(MINUTE_STREAM, b))
            z = np.random.default_rng(seq).standard_normal((BLOCK_SESSIONS, MINUTES_PER_SESSION))
            self._build_minutes(slice(lo, hi), z[:hi - lo].copy())
            for i in np.flatnonzero(self.early[lo:hi]).tolist():  # a few a year: rebuilt on their own
                self._build_minutes(slice(lo + i, lo + i + 1), z[i:i + 1, :EARLY_CLOSE_MINUTES].copy())
            self.drawn[b] = True

    def _build_minutes(self, rows: slice, walk: np.ndarray) -> None:
        """Minute closes, high and low of `rows` (sessions of one length) from their shocks (consumed)."""
        minutes = walk.shape[1]
        _, sqrt_w, share = _intraday_profile(minutes)
        f = OVERNIGHT_VAR_SHARE
        walk *= sqrt_w
        np.cumsum(walk, axis=1, out=walk)
        # Brownian bridge from the open to the close: log price = log open + scale x walk + slope x share,
        # the slope pinning the walk's end to the day's intraday shock (U-shaped variance kept).
        scale = self.sd[rows] * np.sqrt(1 - f)
        slope = self.mu[rows] * (1 - f) + scale * (self.intraday_shock[rows] - walk[:, -1])
        walk *= scale[:, None]
        walk += self.log_open[rows, None]
        walk += np.multiply.outer(slope, share)
        walk[:, -1] = self.log_open[rows] + self.intraday[rows]  # exactly the day's close
        close = np.round(np.exp(walk, out=walk), 2, out=walk)
        self.minute_close[rows, :minutes] = close
        self.minute_close[rows, minutes:] = np.nan
        self.high[rows] = np.fmax(close.max(axis=1), self.open[rows])
        self.low[rows] = np.fmin(close.min(axis=1), self.open[rows])

    def minute_bars(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open, close and volume of each minute of `rows`; NaN after an early close."""
        self.ensure_minutes(rows)
        close = self.minute_close[rows]
        open_ = np.empty_like(close)
        open_[:, 0] = self.open[rows]
        open_[:, 1:] = close[:, :-1]  # a minute opens at the previous minute's close
        volume = np.multiply.outer(self.volume[rows], _intraday_profile(MINUTES_PER_SESSION)[0])
        for i in np.flatnonzero(self.early[rows]).tolist():
            volume[i, :EARLY_CLOSE_MINUTES] = self.volume[rows[i]] * _intraday_profile(EARLY_CLOSE_MINUTES)[0]
            open_[i, EARLY_CLOSE_MINUTES:] = volume[i, EARLY_CLOSE_MINUTES:] = np.nan
        return open_, close, np.round(volume, out=volume)


@lru_cache(maxsize=8)
def _path(symbol: str, seed: int) -> _Path:
    return _Path(symbol, seed)


class SyntheticMarket(PriceSource):
    """PriceSource that invents a plausible market; every row it feeds is labelled synthetic."""

    name = labels.SYNTHETIC
    is_synthetic = True

    def __init__(self, seed: int = 42):
        super().__init__()
        self.seed = int(seed)

    def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> DailyBars:
        if start < EPOCH:
            raise BadInput(f"the synthetic market starts on {EPOCH}; got start {start}")
        p = _path(symbol, self.seed)
        lo, hi = bisect.bisect_left(p.dates, start), bisect.bisect_right(p.dates, end)
        hi = max(lo, hi)
        p.ensure_minutes(np.arange(lo, hi))  # high and low come from the minute path
        sl = slice(lo, hi)
        return DailyBars(
            symbol, p.dates[sl], p.open[sl].copy(), p.high[sl].copy(), p.low[sl].copy(),
            p.close[sl].copy(), p.volume[sl].copy(), self.name,
        )

    def minute_bars(self, symbol: str, sessions: list[Session]) -> MinuteBars:
        p = _path(symbol, self.seed)
        open_, close, volume = p.minute_bars(p.rows(sessions))
        return MinuteBars(symbol, list(sessions), open_, close, volume, self.name)
