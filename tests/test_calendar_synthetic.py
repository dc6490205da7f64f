"""Properties of the trading calendar and of the synthetic market."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.calendar import sessions_between, window_for_days
from gexhistory.sources.synthetic import SyntheticMarket, symbol_level

dates = st.dates(min_value=dt.date(2001, 1, 1), max_value=dt.date(2026, 11, 1))


@settings(max_examples=40, deadline=None)
@given(dates, st.integers(min_value=0, max_value=400))
def test_sessions_are_increasing_weekdays_with_ordered_snapshots(start, span):
    ss = sessions_between(start, start + dt.timedelta(days=span))
    ds = [s.date for s in ss]
    assert ds == sorted(set(ds))
    for s in ss:
        assert s.date.weekday() < 5
        times = s.snapshot_times()
        assert len(times) == 4 and times == sorted(times)
        assert times[0] == s.open and times[-1] == s.close


def test_known_closures_and_early_closes():
    ss = {s.date: s for s in sessions_between(dt.date(2024, 12, 20), dt.date(2025, 1, 15))}
    assert dt.date(2024, 12, 25) not in ss and dt.date(2025, 1, 1) not in ss
    assert dt.date(2025, 1, 9) not in ss  # national day of mourning
    assert ss[dt.date(2024, 12, 24)].early_close and not ss[dt.date(2024, 12, 23)].early_close


def test_days_window_is_calendar_days():
    start, end = window_for_days(365)
    assert (end - start).days == 364
    n = len(sessions_between(start, end))
    assert 248 <= n <= 253


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["SPY", "QQQ", "IWM", "AAPL", "ZZZT"]), st.integers(0, 2**31 - 1), dates)
def test_synthetic_ohlc_coherent_and_positive(symbol, seed, start):
    bars = SyntheticMarket(seed).daily_bars(symbol, start, start + dt.timedelta(days=120))
    assert len(bars) > 0
    assert np.all(bars.low <= np.minimum(bars.open, bars.close))
    assert np.all(bars.high >= np.maximum(bars.open, bars.close))
    assert np.all(bars.low > 0) and np.all(bars.volume > 0)


def test_synthetic_is_reproducible_and_window_independent():
    a = SyntheticMarket(7).daily_bars("SPY", dt.date(2020, 1, 2), dt.date(2020, 12, 31))
    b = SyntheticMarket(7).daily_bars("SPY", dt.date(2019, 1, 2), dt.date(2024, 12, 31)).slice_dates(
        dt.date(2020, 1, 2), dt.date(2020, 12, 31))
    assert np.array_equal(a.close, b.close) and a.dates == b.dates
    c = SyntheticMarket(8).daily_bars("SPY", dt.date(2020, 1, 2), dt.date(2020, 12, 31))
    assert not np.array_equal(a.close, c.close)


def test_synthetic_stylized_facts():
    bars = SyntheticMarket(42).daily_bars("SPY", dt.date(2005, 1, 3), dt.date(2024, 12, 31))
    r = np.diff(np.log(bars.close))
    kurt = ((r - r.mean()) ** 4).mean() / r.var() ** 2
    assert kurt > 4  # fat tails
    ar = np.abs(r)
    acf = np.corrcoef(ar[:-1], ar[1:])[0, 1]
    assert acf > 0.1  # volatility clustering
    future = np.array([ar[i + 1:i + 11].mean() for i in range(r.size - 11)])
    big = 2 * r.std()
    after_falls, after_rises = future[r[:-11] < -big].mean(), future[r[:-11] > big].mean()
    assert after_falls > 1.05 * after_rises  # leverage effect: falls raise volatility more than rises
    gaps = np.log(bars.open[1:] / bars.close[:-1])
    assert 0.05 < gaps.var() / r.var() < 0.5  # overnight gaps carry part of the variance
    at_anchor = SyntheticMarket(42).daily_bars("SPY", dt.date(2025, 1, 2), dt.date(2025, 1, 2)).close[0]
    assert at_anchor == round(symbol_level("SPY"), 2)


def test_minute_spots_match_daily_bars():
    from gexhistory.calendar import sessions_between as sb

    m = SyntheticMarket(3)
    ss = sb(dt.date(2025, 7, 1), dt.date(2025, 7, 8))
    spots = m.minute_bars("SPY", ss).spots_at([s.snapshot_times() for s in ss])
    bars = m.daily_bars("SPY", ss[0].date, ss[-1].date)
    assert np.array_equal(spots[:, 0], bars.open) and np.array_equal(spots[:, -1], bars.close)
    assert np.all((spots >= bars.low[:, None]) & (spots <= bars.high[:, None]))


def test_session_cache_round_trips(tmp_path, monkeypatch):
    import gexhistory.calendar as cal

    monkeypatch.setenv("GEXHISTORY_CACHE_DIR", str(tmp_path))
    built = cal._session_table()
    cached_file = cal._cache_file()
    assert cached_file.exists() and cached_file.is_relative_to(tmp_path)
    again = cal._session_table()
    assert again == built
    days = [dt.date.fromordinal(d) for d in built[0]]
    assert dt.date(2025, 1, 9) not in days and dt.date(2025, 1, 8) in days  # the special closure
    assert days == sorted(days) and len(built[1]) == len(built[2]) == len(days)
    for damage in (b"not a cache", cached_file.read_bytes()[:-8]):  # garbage, a truncated file
        cached_file.write_bytes(damage)
        assert cal._session_table() == built  # rebuilt, not trusted


def test_stale_session_cache_is_rebuilt(tmp_path, monkeypatch):
    from array import array

    import gexhistory.calendar as cal

    monkeypatch.setenv("GEXHISTORY_CACHE_DIR", str(tmp_path))
    built = cal._session_table()
    path = cal._cache_file()
    a = array("q", path.read_bytes())
    a[1] -= cal.CACHE_MAX_AGE.days + 1  # built too long ago
    a[3] += 1  # and marked, so a read that trusted it would show
    path.write_bytes(a.tobytes())
    assert cal._session_table() == built
    assert array("q", path.read_bytes())[1] == dt.date.today().toordinal()
