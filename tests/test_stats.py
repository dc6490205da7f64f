"""engine.stats against values worked out by hand and against an independent numpy computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.engine import stats


@pytest.mark.parametrize("k,n,low,high", [
    (7, 10, 0.3968, 0.8922),   # textbook example (Wilson 1927 / Newcombe 1998 tables)
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (1, 2, 0.0945, 0.9055),
    (81, 263, 0.2553, 0.3662),  # Newcombe (1998) example 81/263
])
def test_wilson_matches_published_values(k, n, low, high):
    p = stats.wilson(k, n)
    assert p.p == pytest.approx(k / n)
    assert p.low == pytest.approx(low, abs=1e-4)
    assert p.high == pytest.approx(high, abs=1e-4)


def test_wilson_empty_and_invalid():
    assert stats.wilson(0, 0).p is None and stats.wilson(0, 0).low is None
    with pytest.raises(ValueError):
        stats.wilson(3, 2)


@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_contains_p_and_stays_in_unit_interval(k, n):
    k = min(k, n)
    p = stats.wilson(k, n)
    assert 0.0 <= p.low <= p.p <= p.high <= 1.0


def test_streaks_by_hand():
    assert stats.current_streak([]) == (None, 0)
    assert stats.current_streak([True, False, True, True]) == ("W", 2)
    assert stats.current_streak([True, True, False]) == ("L", 1)
    assert stats.longest_streaks([True, True, False, False, False, True]) == (2, 3)
    assert stats.longest_streaks([]) == (0, 0)


def test_expectancy_by_hand():
    # 2 wins averaging +1.75%, 2 losses averaging -0.25% -> +0.75% per signal.
    assert stats.expectancy(2, 2, 1.75, -0.25) == pytest.approx(0.75)
    assert stats.expectancy(2, 1, 2.5, -1.0) == pytest.approx(4 / 3)
    assert stats.expectancy(3, 0, 1.0, None) == pytest.approx(1.0)
    assert stats.expectancy(0, 0, None, None) is None


def test_pearson_by_hand():
    # x = 1,2,3 and y = 1,3,2: deviations (-1,0,1) and (-1,1,0): Sxy = 1, Sxx = Syy = 2, r = 1/2.
    assert stats.pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5, abs=1e-12)
    # x = 1..4, y = 2,4,5,4: Sxy = 3.5, Sxx = 5, Syy = 4.75.
    assert stats.pearson([1, 2, 3, 4], [2, 4, 5, 4]) == pytest.approx(3.5 / math.sqrt(5 * 4.75), abs=1e-12)
    assert stats.pearson([1, 2, 3], [5, 5, 5]) is None
    assert stats.pearson([1, 2], [3, 4]) is None


@settings(max_examples=60)
@given(st.lists(st.tuples(st.floats(-1e10, 1e10), st.floats(400, 600)), min_size=3, max_size=60))
def test_pearson_from_sums_matches_numpy(pairs):
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    if np.ptp(x) < 1e-3 * max(1.0, np.abs(x).max()) or np.ptp(y) < 1e-6:
        return
    cx, cy = x - x.mean(), y - y.mean()
    r = stats.pearson_from_sums(len(x), cx.sum(), cy.sum(), (cx * cx).sum(), (cy * cy).sum(), (cx * cy).sum())
    assert r == pytest.approx(float(np.corrcoef(x, y)[0, 1]), abs=1e-9)


def test_number_formats():
    from gexhistory.web import format as fmt

    assert fmt.money_short(-1.234e9) == "-$1.23B" and fmt.money_short(456.7e6) == "$456.70M"
    assert fmt.money_short(None) == "—" and fmt.money_short(float("nan")) == "—"
    assert fmt.signed_pct(0.456) == "+0.46%" and fmt.signed_pct(-0.0004) == "0.00%" and fmt.signed_pct(-1.5) == "-1.50%"
    assert fmt.frac_pct(0.182) == "18.2%" and fmt.pct(62.5) == "62.5%" and fmt.corr(0.5) == "+0.50"
