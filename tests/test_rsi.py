"""Wilder RSI, the multi-timeframe score, aligned extremes, coiling inputs and volume ratio."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.engine import rsi as r


def loop_rsi(closes, period=14):
    """Wilder's recurrence written out step by step (the independent formulation)."""
    ch = np.diff(np.asarray(closes, dtype=float))
    gains = [max(c, 0.0) for c in ch]
    losses = [max(-c, 0.0) for c in ch]
    ag = sum(gains[:period]) / period
    al = sum(losses[:period]) / period
    for g, lo in zip(gains[period:], losses[period:]):
        ag = (ag * (period - 1) + g) / period
        al = (al * (period - 1) + lo) / period
    return 100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al)


def test_hand_values():
    # 10 rises of 1 and 4 falls of 1: seed averages 10/14 and 4/14, RSI = 100 * 10/14 = 71.43.
    closes = [100.0]
    for c in [1] * 10 + [-1] * 4:
        closes.append(closes[-1] + c)
    assert r.rsi_at(closes, [14])[0] == pytest.approx(100 * 10 / 14)
    # One more rise of 2: gain (130/14 + 2) / 14, loss (52/14) / 14 -> 100 * 158 / 210 = 75.238.
    closes.append(closes[-1] + 2)
    assert r.rsi_at(closes, [15])[0] == pytest.approx(100 * 158 / 210)
    # Fewer than 15 closes: no RSI.
    assert np.isnan(r.rsi_at(closes, [13])[0])
    # No losses at all: 100, and a flat series too (average loss 0).
    assert r.rsi_at(np.arange(30.0), [29])[0] == 100.0
    assert r.rsi_at(np.full(30, 5.0), [29])[0] == 100.0
    assert r.rsi_at(np.arange(30.0)[::-1], [29])[0] == 0.0


def test_matches_explicit_loop_on_fixed_lookback():
    rng = np.random.default_rng(7)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    ends = np.array([14, 15, 40, 99, 100, 250, 399])
    got = r.rsi_at(closes, ends, lookback=100)
    for e, v in zip(ends, got):
        window = closes[max(0, e - 99):e + 1]
        assert v == pytest.approx(loop_rsi(window), rel=1e-10)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1000.0), min_size=15, max_size=120))
def test_rsi_in_range_and_equal_to_loop(closes):
    v = r.rsi_at(closes, [len(closes) - 1], lookback=200)[0]
    assert 0.0 <= v <= 100.0
    assert v == pytest.approx(loop_rsi(closes), rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0.0, 100.0)), min_size=5, max_size=5))
def test_score_in_range_and_renormalised(values):
    rsi = {tf: np.array([np.nan if v is None else v]) for tf, v in zip(r.TIMEFRAMES, values)}
    score = r.rsi_score(rsi)[0]
    present = [(tf, v) for tf, v in zip(r.TIMEFRAMES, values) if v is not None]
    if not present:
        assert np.isnan(score)
        return
    assert -100.0 <= score <= 100.0
    w = sum(r.WEIGHTS[tf] for tf, _ in present)
    assert score == pytest.approx(sum(r.WEIGHTS[tf] * (v - 50) * 2 for tf, v in present) / w)


def test_score_weights_and_aligned_counts():
    rsi = {"5m": np.array([80.0]), "15m": np.array([75.0]), "1h": np.array([71.0]), "4h": np.array([70.0]),
           "1d": np.array([20.0])}
    expected = 0.10 * 60 + 0.15 * 50 + 0.20 * 42 + 0.25 * 40 + 0.30 * -60
    assert r.rsi_score(rsi)[0] == pytest.approx(expected)
    ob, os_ = r.aligned_counts(rsi)
    assert (ob[0], os_[0]) == (3, 1)  # 70 is not overbought


def test_intraday_bars_anchor_at_the_open_and_skip_missing_minutes():
    m = np.full((2, 390), np.nan)
    m[0] = np.arange(390.0)
    m[1, :210] = 1000 + np.arange(210.0)  # early close
    m[0, 235:240] = np.nan  # an untraded stretch inside a bar
    closes, rows = r.intraday_bar_closes(m, 240)
    assert closes.tolist() == [234.0, 389.0, 1209.0]  # first 4h bar ends on its last traded minute
    assert rows.tolist() == [0, 0, 1]
    c5, rows5 = r.intraday_bar_closes(m, 5)
    assert (rows5 == 0).sum() == 77 and (rows5 == 1).sum() == 42  # the untraded 5m bar does not exist
    assert c5[0] == 4.0 and c5[76] == 389.0 and c5[77] == 1004.0


def test_volume_ratio_and_range_contraction():
    v = np.r_[np.full(20, 10.0), 30.0]
    vr = r.volume_ratio(v)
    assert np.isnan(vr[:20]).all() and vr[20] == pytest.approx(3.0)
    close = np.full(25, 100.0)
    high = close + np.r_[np.full(20, 2.0), np.full(5, 1.0)]
    low = close.copy()
    rc = r.range_contraction(high, low, close)
    assert np.isnan(rc[:19]).all()
    # last 5 ranges 1%, last 20 ranges: 15 x 2% + 5 x 1% -> 1 / 1.75
    assert rc[-1] == pytest.approx(1 / 1.75)
    ob = np.array([3, 3, 2])
    assert r.coiling(ob, np.array([0, 0, 0]), np.array([0.69, 0.70, 0.1])).tolist() == [True, False, False]
