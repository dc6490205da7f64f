"""engine/yearly.py: per-year and per-span metrics, against figures worked out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from gexhistory.engine.chain_model import listing_days
from gexhistory.engine.yearly import by_span, by_year, level_ratio, metrics


def _series():
    dates = [dt.date(2020, 12, 30), dt.date(2020, 12, 31), dt.date(2021, 1, 4), dt.date(2021, 1, 5),
             dt.date(2021, 1, 6)]
    model = np.array([2.0, -1.0, 1.0, -3.0, 4.0])
    ref = np.array([4.0, 1.0, 2.0, -6.0, 8.0])
    return dates, model, ref


def test_by_year_splits_on_calendar_years():
    dates, model, ref = _series()
    out = by_year(dates, model, ref)
    assert list(out) == [2020, 2021]
    assert out[2020]["n"] == 2 and out[2020]["sign_agreement"] == 0.5  # day 2: model -, ref +
    assert out[2020]["negative_precision"] == 0.0 and out[2020]["negative_recall"] is None
    assert out[2021]["n"] == 3 and out[2021]["spearman"] == pytest.approx(1.0)  # same order
    assert out[2021]["sign_agreement"] == 1.0 and out[2021]["negative_recall"] == 1.0
    assert out[2021]["level_ratio"] == pytest.approx(3.0 / 6.0)  # median |model| 3, |ref| 6
    assert out[2021]["model_negative_share"] == pytest.approx(1 / 3)


def test_mask_and_spans():
    dates, model, ref = _series()
    out = by_year(dates, model, ref, mask=np.array([False, True, True, False, False]))
    assert {y: m["n"] for y, m in out.items()} == {2020: 1, 2021: 1}
    spans = by_span(dates, model, ref, [(2020, 2021), (2021, 2021)])
    assert spans["2020-2021"]["n"] == 5 and spans["2021-2021"] == metrics(model[2:], ref[2:])


def test_level_ratio_edge_cases():
    assert level_ratio(np.array([]), np.array([])) is None
    assert level_ratio(np.array([1.0]), np.array([0.0])) is None
    assert level_ratio(np.array([-2.0, 4.0, 6.0]), np.array([1.0, -2.0, 3.0])) == pytest.approx(2.0)


def test_spx_weeklys_were_listed_a_week_ahead_until_may_2012():
    days = np.array(["2012-05-25", "2012-06-08", "2012-06-15"], dtype="datetime64[D]")
    kind = np.array([2, 2, 0])  # weekly, weekly, monthly
    assert listing_days("SPX", days, kind).tolist() == [8, 36, 370]
    assert listing_days("SPY", days, kind).tolist() == [36, 36, 370]
