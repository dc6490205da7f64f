"""The synthetic market's minute paths: built per block on demand, yet window-independent to the bit.

A session's minutes, high and low must not depend on which windows were asked before, in which order
or size, nor in which process (a crash-resumed run equals an uninterrupted one byte for byte), and
the daily bars must be the minute path's own open, high, low and close.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.calendar import sessions_between
from gexhistory.sources import synthetic
from gexhistory.sources.synthetic import BLOCK_SESSIONS, EARLY_CLOSE_MINUTES, SyntheticMarket

REPO = Path(__file__).resolve().parents[1]
days = st.dates(min_value=dt.date(2000, 1, 3), max_value=dt.date(2026, 6, 1))


def fresh(seed: int = 42) -> SyntheticMarket:
    """A market whose paths are built from scratch (no block drawn by an earlier request)."""
    synthetic._path.cache_clear()
    return SyntheticMarket(seed)


def window(start: dt.date, span: int):
    return sessions_between(start, start + dt.timedelta(days=span))


@settings(max_examples=25, deadline=None)
@given(days, st.integers(0, 200), st.integers(-400, 400), st.integers(0, 500), st.booleans())
def test_overlapping_windows_in_any_order_agree(start, span, shift, other_span, daily_first):
    """Ask a window, then another overlapping it (or not): shared sessions equal a fresh request."""
    target = window(start, span)
    other_start = max(dt.date(2000, 1, 3), start + dt.timedelta(days=shift))
    other = window(other_start, other_span)
    m = fresh()
    if daily_first:
        m.daily_bars("SPY", other_start, other_start + dt.timedelta(days=other_span))
    else:
        m.minute_bars("SPY", other)
    after = m.minute_bars("SPY", target)
    after_daily = m.daily_bars("SPY", start, start + dt.timedelta(days=span))
    alone = fresh().minute_bars("SPY", target)
    alone_daily = fresh().daily_bars("SPY", start, start + dt.timedelta(days=span))
    for a, b in ((after.open, alone.open), (after.close, alone.close), (after.volume, alone.volume)):
        assert np.array_equal(a, b, equal_nan=True)
    for f in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(after_daily, f), getattr(alone_daily, f)), f


def test_block_edges_and_sizes():
    """Sessions either side of a block boundary, asked alone, inside a long window, or one by one."""
    edge = BLOCK_SESSIONS * 60  # a block boundary, counted in sessions since EPOCH
    sessions = sessions_between(synthetic.EPOCH, dt.date(2030, 1, 1))[edge - 3:edge + 3]
    alone = fresh(3).minute_bars("IWM", sessions)
    long = fresh(3).minute_bars("IWM", sessions_between(sessions[0].date - dt.timedelta(days=900), sessions[-1].date))
    m = fresh(3)
    one_by_one = [m.minute_bars("IWM", [s]).close[0] for s in reversed(sessions)][::-1]
    assert np.array_equal(alone.close, long.close[-len(sessions):], equal_nan=True)
    assert np.array_equal(alone.close, np.array(one_by_one), equal_nan=True)


def _digest_in_fresh_process(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return out.stdout.strip()


CHILD = """
import datetime as dt, hashlib
from gexhistory.calendar import sessions_between
from gexhistory.sources.synthetic import SyntheticMarket
m = SyntheticMarket(42)
{before}
ss = sessions_between(dt.date(2016, 11, 1), dt.date(2017, 2, 28))
b = m.minute_bars("SPY", ss)
d = m.daily_bars("SPY", dt.date(2016, 11, 1), dt.date(2017, 2, 28))
print(hashlib.sha256(b.open.tobytes() + b.close.tobytes() + b.volume.tobytes() + d.high.tobytes()
                     + d.low.tobytes() + d.close.tobytes()).hexdigest())
"""


def test_same_bytes_in_another_process_whatever_came_first():
    cold = _digest_in_fresh_process(CHILD.format(before=""))
    warmed = _digest_in_fresh_process(CHILD.format(
        before='m.daily_bars("SPY", dt.date(2003, 1, 2), dt.date(2025, 6, 30)); '
               'm.minute_bars("SPY", sessions_between(dt.date(2017, 1, 3), dt.date(2018, 6, 1)))'))
    assert cold == warmed


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["SPY", "QQQ", "IWM", "NDX", "ZZZT"]), st.integers(0, 2**31 - 1), days, st.integers(0, 60))
def test_daily_bars_are_the_minute_paths_ohlc(symbol, seed, start, span):
    m = SyntheticMarket(seed)
    ss = window(start, span)
    if not ss:
        return
    bars = m.minute_bars(symbol, ss)
    daily = m.daily_bars(symbol, ss[0].date, ss[-1].date)
    assert daily.dates == [s.date for s in ss] and daily.source == bars.source == "synthetic"
    assert np.all(daily.low <= np.minimum(daily.open, daily.close))
    assert np.all(daily.high >= np.maximum(daily.open, daily.close))
    assert np.array_equal(daily.high, np.fmax(np.nanmax(bars.close, axis=1), bars.open[:, 0]))
    assert np.array_equal(daily.low, np.fmin(np.nanmin(bars.close, axis=1), bars.open[:, 0]))
    assert np.array_equal(bars.open[:, 0], daily.open)
    for i, s in enumerate(ss):
        last = s.minutes - 1
        assert (s.minutes == EARLY_CLOSE_MINUTES) == s.early_close
        assert bars.close[i, last] == daily.close[i]
        assert not np.isnan(bars.close[i, :last + 1]).any() and np.isnan(bars.close[i, last + 1:]).all()
        assert np.isnan(bars.open[i, last + 1:]).all() and np.isnan(bars.volume[i, last + 1:]).all()
        assert np.array_equal(bars.open[i, 1:last + 1], bars.close[i, :last])  # a minute opens at the last close
        assert abs(np.nansum(bars.volume[i]) - daily.volume[i]) <= s.minutes / 2  # volume split, rounded
    assert np.all(daily.low > 0) and np.all(np.isfinite(daily.high))


def test_reproducible_by_seed_and_distinct_per_seed_and_symbol():
    ss = sessions_between(dt.date(2012, 5, 1), dt.date(2012, 6, 29))
    a = fresh(7).minute_bars("SPY", ss).close
    assert np.array_equal(a, fresh(7).minute_bars("SPY", ss).close)
    b = fresh(8).minute_bars("SPY", ss).close
    c = fresh(7).minute_bars("QQQ", ss).close
    rel = np.log(a[:, 1:] / a[:, :-1])
    for other in (b, c):
        # Different shocks, not a rescaled copy of the same path.
        assert abs(np.corrcoef(rel.ravel(), np.log(other[:, 1:] / other[:, :-1]).ravel())[0, 1]) < 0.1


def test_intraday_profile_is_u_shaped():
    """Volume and volatility are highest at the open, lowest at midday, and rise into the close."""
    ss = sessions_between(dt.date(2018, 1, 2), dt.date(2019, 12, 31))
    bars = fresh(1).minute_bars("SPY", [s for s in ss if not s.early_close])
    vol = bars.volume.mean(axis=0)
    move = np.abs(np.diff(np.log(bars.close), axis=1)).mean(axis=0)
    midday = slice(150, 240)
    for profile in (vol, move[1:]):
        assert profile[:10].mean() > 1.5 * profile[midday].mean()
        assert profile[-10:].mean() > 1.2 * profile[midday].mean()

