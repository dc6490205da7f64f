"""The records every price source yields, and the one small interface they share."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from gexhistory.calendar import Session

VIX = "I:VIX"  # the CBOE volatility index, as Massive names it
MINUTES_PER_SESSION = 390  # regular session 09:30-16:00; early closes use fewer columns


@dataclass
class DailyBars:
    """One row per session, ascending. Prices adjusted; `close_only` when O/H/L were not supplied."""

    symbol: str
    dates: list[dt.date]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str
    close_only: bool = False
    vwap: np.ndarray | None = None  # provider extras, stored in price_bars when present
    trades: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.dates)

    def index_of(self) -> dict[dt.date, int]:
        return {d: i for i, d in enumerate(self.dates)}

    def slice_dates(self, start: dt.date, end: dt.date) -> "DailyBars":
        idx = [i for i, d in enumerate(self.dates) if start <= d <= end]
        sl = slice(idx[0], idx[-1] + 1) if idx else slice(0, 0)
        return DailyBars(
            self.symbol, self.dates[sl], self.open[sl], self.high[sl], self.low[sl],
            self.close[sl], self.volume[sl], self.source, self.close_only,
            None if self.vwap is None else self.vwap[sl], None if self.trades is None else self.trades[sl],
        )


@dataclass
class MinuteBars:
    """Regular-hours minute bars, one row per session and one column per minute since the open.

    Column m is the bar that starts m minutes after 09:30 ET. Minutes that do not exist (after an
    early close) or were not traded are NaN.
    """

    symbol: str
    sessions: list[Session]
    open: np.ndarray  # (n_sessions, 390)
    close: np.ndarray
    volume: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)
    high: np.ndarray | None = None  # optional, same shape as close
    low: np.ndarray | None = None

    def spots_at(self, times_per_session: list[list[dt.datetime]]) -> np.ndarray:
        """Price at each snapshot time: the open at the opening bell, else the close of the last
        traded minute that ended at or before the time. One row per session, one column per time
        (NaN where a session has fewer times, or no price is known)."""
        n = len(self.sessions)
        k = max((len(t) for t in times_per_session), default=0) if n else 0
        out = np.full((n, k), np.nan)
        pairs = list(zip(self.sessions, times_per_session))
        counts = np.array([len(times) for _, times in pairs], dtype=np.intp)
        if not counts.sum():
            return out
        row = np.repeat(np.arange(counts.size), counts)
        col = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
        seconds = np.array([(t - s.open).total_seconds() for s, times in pairs for t in times])
        minute = np.floor_divide(seconds, 60.0).astype(np.int64)
        bell = minute <= 0
        out[row[bell], col[bell]] = _first_valid(self.open[row[bell]])
        later = ~bell
        ended = np.minimum(minute[later], self.close.shape[1]) - 1  # the minute bar that ended by then
        out[row[later], col[later]] = _last_valid_at(self.close, row[later], ended)
        return out


def minutes_from_daily(daily: DailyBars, sessions: list[Session]) -> MinuteBars:
    """The only intraday prices a daily bar makes known: the open in the first minute's open and the
    close in the last minute's close. Every other minute stays NaN, so snapshots between them have no
    price (they are dropped, never interpolated). A close-only bar gives the close alone."""
    n = len(sessions)
    open_ = np.full((n, MINUTES_PER_SESSION), np.nan)
    close = np.full((n, MINUTES_PER_SESSION), np.nan)
    volume = np.full((n, MINUTES_PER_SESSION), np.nan)
    idx = daily.index_of()
    for i, s in enumerate(sessions):
        j = idx.get(s.date)
        if j is None:
            continue
        last = min(s.minutes, MINUTES_PER_SESSION) - 1
        if not daily.close_only:
            open_[i, 0] = daily.open[j]
        close[i, last] = daily.close[j]
    return MinuteBars(daily.symbol, list(sessions), open_, close, volume, daily.source)


def _ffill_rows(a: np.ndarray) -> np.ndarray:
    mask = np.isnan(a)
    idx = np.where(~mask, np.arange(a.shape[1]), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    return a[np.arange(a.shape[0])[:, None], idx]


def _first_valid(rows: np.ndarray) -> np.ndarray:
    """Per row, its first non-NaN value (NaN for an all-NaN row)."""
    first = np.argmax(~np.isnan(rows), axis=1)  # 0 for an all-NaN row, whose value there is NaN
    return rows[np.arange(rows.shape[0]), first]


def _last_valid_at(a: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """a[rows, cols], each NaN replaced by the row's last non-NaN value before that column (if any).
    Only the rows of NaN hits are forward-filled: traded minutes are the rule."""
    values = a[rows, cols]
    miss = np.flatnonzero(np.isnan(values))
    if miss.size:
        values[miss] = _ffill_rows(a[rows[miss]])[np.arange(miss.size), cols[miss]]
    return values


class PriceSource:
    """What every provider of prices offers the pipeline, with a default for every optional member
    (the OpenBB fetcher pattern: each source fills the same hooks; callers never probe with getattr).

    Required: `name` (the data_source label written on every row), `daily_bars`, `minute_bars`.
    Optional, with their defaults here: `is_synthetic`, `cache_bars`, `vix_label`, `notes`, `vix_bars`,
    `check_covers`.
    Subclasses call `super().__init__()`.
    """

    name: str = ""
    is_synthetic: bool = False  # the seeded synthetic market: labelled, never mixed silently with real data
    cache_bars: bool = False  # bars fetched over the network are kept in price_bars and read back on reruns
    vix_label: str = VIX  # the vix_source written with VIX values this source supplies

    def __init__(self) -> None:
        self.notes: list[str] = []  # what the source had to say (fall-backs, plan limits), for the summary

    def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> DailyBars:
        """Daily bars for the sessions in [start, end]; raises BadInput/WorkFailed."""
        raise NotImplementedError

    def minute_bars(self, symbol: str, sessions: list[Session]) -> MinuteBars:
        """Regular-hours minute bars for these sessions; a session the source has no minutes for is a
        row of NaN (the pipeline then uses the daily open and close, see `minutes_from_daily`)."""
        raise NotImplementedError

    def vix_bars(self, start: dt.date, end: dt.date) -> DailyBars | None:
        """Daily I:VIX bars where the source has them, else None (callers then use a labelled proxy)."""
        return None

    def check_covers(self, symbol: str, bars_from: dt.date, start: dt.date, end: dt.date) -> None:
        """Raise BadInput when the user's own data cannot price every session of [start, end] (bars
        from `bars_from` on are read). Called before anything is written, so only a source whose data
        is the user's input and free to read (a file) checks here; a provider is asked while working."""
