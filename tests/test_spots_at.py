"""MinuteBars.spots_at, vectorised, against the plain loop it replaced.

The minute data are real synthetic bars with holes punched in them (untraded minutes, whole untraded
sessions, a daily-only row as `minutes_from_daily` builds it) and the times are anything a caller may
pass: the opening bell, the close, before the open, after the close, between minute boundaries.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.calendar import sessions_between
from gexhistory.sources.base import MinuteBars, _ffill_rows
from gexhistory.sources.synthetic import SyntheticMarket

# Windows that hold an early close (2024-07-03, 2024-11-29, 2024-12-24) and regular sessions.
STARTS = [dt.date(2024, 7, 1), dt.date(2024, 11, 26), dt.date(2024, 12, 20), dt.date(2025, 3, 10)]


def reference_spots(bars: MinuteBars, times_per_session) -> np.ndarray:
    """The loop spots_at used before it was vectorised."""
    n = len(bars.sessions)
    k = max(len(t) for t in times_per_session) if n else 0
    out = np.full((n, k), np.nan)
    filled = _ffill_rows(bars.close)
    for i, (sess, times) in enumerate(zip(bars.sessions, times_per_session)):
        for j, t in enumerate(times):
            minute = int((t - sess.open).total_seconds() // 60)
            if minute <= 0:
                row_open = bars.open[i]
                first = np.flatnonzero(~np.isnan(row_open))
                out[i, j] = row_open[first[0]] if first.size else np.nan
            else:
                out[i, j] = filled[i, min(minute, filled.shape[1]) - 1]
    return out


offsets = st.one_of(
    st.sampled_from(["open", "close", "after close"]),
    st.tuples(st.integers(-7200, 25200), st.integers(0, 999_999)),  # seconds, microseconds from the open
)
holes = st.one_of(
    st.just(None),
    st.sampled_from(["all", "daily only", "no open"]),
    st.tuples(st.integers(0, 389), st.integers(1, 390)),  # start, length of untraded minutes
)


def _time(s, what) -> dt.datetime:
    if what == "open":
        return s.open
    if what == "close":
        return s.close
    if what == "after close":
        return s.close + dt.timedelta(minutes=7)
    return s.open + dt.timedelta(seconds=what[0], microseconds=what[1])


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(STARTS), st.integers(1, 5), st.data())
def test_spots_at_equals_the_reference_loop(start, n, data):
    sessions = sessions_between(start, start + dt.timedelta(days=10))[:n]
    bars = SyntheticMarket(5).minute_bars("QQQ", sessions)
    for i, s in enumerate(sessions):
        hole = data.draw(holes)
        if hole == "all":
            bars.open[i] = bars.close[i] = np.nan
        elif hole == "daily only":  # what minutes_from_daily leaves: the open and the close alone
            last = s.minutes - 1
            keep_open, keep_close = bars.open[i, 0], bars.close[i, last]
            bars.open[i] = bars.close[i] = np.nan
            bars.open[i, 0], bars.close[i, last] = keep_open, keep_close
        elif hole == "no open":
            bars.open[i, :5] = bars.close[i, :5] = np.nan
        elif hole is not None:
            a, length = hole
            bars.open[i, a:a + length] = bars.close[i, a:a + length] = np.nan
    times = [[_time(s, w) for w in data.draw(st.lists(offsets, max_size=6))] for s in sessions]
    got = bars.spots_at(times)
    assert np.array_equal(got, reference_spots(bars, times), equal_nan=True)


def test_spots_at_snapshot_times_of_a_year():
    sessions = sessions_between(dt.date(2024, 1, 2), dt.date(2024, 12, 31))
    bars = SyntheticMarket(9).minute_bars("SPY", sessions)
    times = [s.snapshot_times() for s in sessions]
    spots = bars.spots_at(times)
    assert spots.shape == (len(sessions), 4) and not np.isnan(spots).any()
    assert np.array_equal(spots, reference_spots(bars, times))


def test_spots_at_with_no_sessions_or_no_times():
    empty = SyntheticMarket(5).minute_bars("SPY", [])
    assert empty.spots_at([]).shape == (0, 0)
    sessions = sessions_between(dt.date(2025, 3, 10), dt.date(2025, 3, 11))
    bars = SyntheticMarket(5).minute_bars("SPY", sessions)
    assert bars.spots_at([[], []]).shape == (2, 0)
    ragged = bars.spots_at([[sessions[0].open], []])
    assert ragged.shape == (2, 1) and ragged[0, 0] == bars.open[0, 0] and np.isnan(ragged[1, 0])
