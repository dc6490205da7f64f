"""The thirteen patterns of SPEC §6: each triggered by a constructed case, not triggered just outside
its thresholds, and the order (first match wins)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from gexhistory.engine import signals as sg
from gexhistory.engine.structure import is_monthly_expiry
from reference_structure import GammaStructure, monthly_magnets, signal_walls, wall_expiry

S = 500.0


def base(**kw) -> sg.SignalInputs:
    """A quiet day that matches no pattern: small long gamma, flip far away, RSI neutral, walls far."""
    x = sg.SignalInputs(
        symbol="SPY", spot=S, net_gamma=1e8, flip=None,
        rsi={"5m": 50.0, "15m": 50.0, "1h": 50.0, "4h": 50.0, "1d": 50.0}, rsi_score=0.0,
        overbought=0, oversold=0, coiling=False, volume_ratio=1.0, vix=15.0, vix_previous=15.0,
        vix_source="atm_iv_proxy", gamma_this_week=3e9, net_gamma_this_week=0.0, gamma_next_week=2e9,
        zero_dte_gamma=0.0, pin_next_week=10e9, call_wall=S * 1.05, call_wall_gamma=1e8, put_wall=S * 0.9,
        put_wall_gamma=-1e8, call_wall_any=S * 1.05, put_wall_any=S * 0.9, call_soon_ratio=0.0,
        call_first_expiry=None, call_first_dte=None, put_soon_ratio=0.0, put_next_ratio=0.0,
        put_first_expiry=None, put_first_dte=None, magnet_above=None, magnet_above_strength=None,
        magnet_below=None, magnet_below_strength=None, magnet_expiry=None, scale=1.0,
        session_date=dt.date(2025, 6, 2),
    )
    return dataclasses.replace(x, **kw)


def primary(x):
    return sg.detect(x)[0]


def test_quiet_day_is_neutral():
    assert sg.detect(base()) == (None, None)
    assert sg.signal_row(base()) is None


CASES = {
    # pattern: (fields that trigger it, fields just outside one threshold)
    "GAMMA_SQUEEZE_CASCADE": (dict(net_gamma=-1e8, vix=18.1, volume_ratio=2.1, rsi_score=10.0),
                              [dict(volume_ratio=2.0), dict(vix=18.0), dict(rsi_score=50.0), dict(net_gamma=0.0)]),
    "FLIP_POINT_CRITICAL": (dict(flip=S * (1 - 0.00495)), [dict(flip=S * (1 - 0.00505)), dict(flip=None)]),
    "POST_OPEX_REGIME_FLIP": (dict(net_gamma=2e9, net_gamma_this_week=1.01e9),
                              [dict(net_gamma_this_week=0.99e9), dict(net_gamma=1e9, net_gamma_this_week=0.9e9),
                               dict(scale=2.5)]),
    "LIBERATION_TRADE": (dict(call_wall=S * 1.0299, call_soon_ratio=0.75, overbought=3, coiling=True),
                         [dict(call_soon_ratio=0.70), dict(call_wall=S * 1.0301), dict(overbought=2),
                          dict(coiling=False)]),
    "FALSE_FLOOR": (dict(put_wall=S * 0.951, put_soon_ratio=0.65, put_next_ratio=0.29, oversold=1),
                    [dict(put_soon_ratio=0.60), dict(put_next_ratio=0.30), dict(oversold=2),
                     dict(put_wall=S * 0.949)]),
    "ZERO_DTE_PIN": (dict(zero_dte_gamma=5.01e9, coiling=True), [dict(zero_dte_gamma=5e9), dict(coiling=False)]),
    "DESTINATION_TRADE": (dict(magnet_above=S * 1.06, magnet_above_strength=60.0, overbought=3,
                               call_wall=S * 1.0299),
                          [dict(magnet_above_strength=50.0), dict(overbought=2), dict(call_wall=S * 1.0301)]),
    "PIN_AT_CALL_WALL": (dict(rsi_score=51.0, overbought=3, call_wall=S * 1.0199, net_gamma=-1e8),
                         [dict(rsi_score=50.0), dict(overbought=2), dict(call_wall=S * 1.0201),
                          dict(net_gamma=0.0)]),
    "EXPLOSIVE_CONTINUATION": (dict(call_wall_any=S * (1 - 0.0051), overbought=3, volume_ratio=1.21,
                                    net_gamma=-1e8),
                               [dict(call_wall_any=S * (1 - 0.0049)), dict(volume_ratio=1.2), dict(overbought=2),
                                dict(net_gamma=1e8)]),
    "PIN_AT_PUT_WALL": (dict(rsi_score=-51.0, oversold=3, put_wall=S * 0.9801, net_gamma=-1e8),
                        [dict(rsi_score=-50.0), dict(oversold=2), dict(put_wall=S * 0.9799), dict(net_gamma=0.0)]),
    "CAPITULATION_CASCADE": (dict(put_wall_any=S * 1.0051, oversold=3, volume_ratio=2.01),
                             [dict(put_wall_any=S * 1.0049), dict(volume_ratio=2.0), dict(oversold=2)]),
    "MEAN_REVERSION_ZONE": (dict(rsi_score=-60.5, net_gamma=1e8), [dict(rsi_score=-60.0), dict(net_gamma=0.0)]),
    "SHORT_GAMMA_MOMENTUM": (dict(net_gamma=-5.01e8), [dict(net_gamma=-5e8), dict(scale=1.01),
                                                       dict(net_gamma=-5.01e8, rsi_score=50.0)]),
}


@pytest.mark.parametrize("pattern", sg.PATTERNS)
def test_each_pattern_triggers_and_not_just_outside(pattern):
    on, offs = CASES[pattern]
    x = base(**on)
    assert primary(x) == pattern
    row = sg.signal_row(x)
    assert row["primary_regime_type"] == pattern
    assert row["confidence_score"] is None  # a hit rate of earlier outcomes: the pipeline's (test_confidence.py)
    assert row["trade_direction"] in ("BULLISH", "BEARISH", "NEUTRAL", "VOLATILE")
    for off in offs:
        y = dataclasses.replace(x, **off)
        assert sg.conditions(y)[pattern] is False, off


def test_thirteen_patterns_in_spec_order():
    assert len(sg.PATTERNS) == 13 and list(sg.conditions(base())) == list(sg.PATTERNS)


def test_first_match_wins_and_second_is_recorded():
    # Short gamma at the flip: FLIP_POINT_CRITICAL (2) before SHORT_GAMMA_MOMENTUM (13).
    x = base(net_gamma=-2e9, flip=S * 1.001)
    assert sg.detect(x) == ("FLIP_POINT_CRITICAL", "SHORT_GAMMA_MOMENTUM")
    # Add a squeeze: pattern 1 outranks both.
    y = dataclasses.replace(x, vix=20.0, volume_ratio=2.5)
    assert sg.detect(y) == ("GAMMA_SQUEEZE_CASCADE", "FLIP_POINT_CRITICAL")
    # Every pair (i < j) of the constructed cases: when both hold, the earlier one is primary.
    for i, a in enumerate(sg.PATTERNS):
        for b in sg.PATTERNS[i + 1:]:
            merged = base(**{**CASES[b][0], **CASES[a][0]})
            c = sg.conditions(merged)
            if c[a] and c[b]:
                assert primary(merged) == next(p for p in sg.PATTERNS if c[p])
                assert sg.PATTERNS.index(primary(merged)) <= sg.PATTERNS.index(a)


def test_texts_are_written_from_the_values():
    a = sg.signal_row(base(net_gamma=-3e9))
    b = sg.signal_row(base(net_gamma=-7e9, rsi_score=-30.0))
    assert a["primary_regime_type"] == b["primary_regime_type"] == "SHORT_GAMMA_MOMENTUM"
    assert "$3.00B" in a["description"] and "$7.00B" in b["description"]
    assert a["detailed_explanation"] != b["detailed_explanation"]
    assert "-30" in b["detailed_explanation"] and b["trade_direction"] == "BEARISH"
    assert a["trade_direction"] == "VOLATILE"  # |score| <= 10: no bias
    assert a["net_gamma"] == -3e9 and a["spy_price"] == S and a["net_gamma_regime"] == "short"
    assert a["price_change_5d"] is None and a["signal_correct"] is None
    flip = sg.signal_row(base(flip=S * 0.998))
    assert flip["zero_gamma_level"] == S * 0.998 and flip["at_flip_point"] == 1
    assert "0.20%" in flip["description"]


def test_directions():
    assert sg.direction(base(rsi_score=70.0), "MEAN_REVERSION_ZONE") == "BEARISH"
    assert sg.direction(base(rsi_score=-70.0), "MEAN_REVERSION_ZONE") == "BULLISH"
    assert sg.direction(base(rsi_score=20.0), "GAMMA_SQUEEZE_CASCADE") == "BULLISH"
    assert sg.direction(base(), "FALSE_FLOOR") == "BEARISH"
    assert sg.direction(base(), "PIN_AT_CALL_WALL") == "NEUTRAL"


def _structure(spot=100.0):
    strikes = np.array([90.0, 95.0, 99.0, 100.0, 101.0, 105.0, 110.0])
    expiries = np.array(["2025-06-03", "2025-06-06", "2025-06-13", "2025-06-20"], dtype="datetime64[D]")
    call = np.zeros((4, 7))
    put = np.zeros((4, 7))
    call[0, 5] = 8.0  # 105: 8 of 10 expire tomorrow
    call[3, 5] = 2.0
    call[1, 6] = 3.0
    call[2, 4] = 0.5
    put[0, 1] = -6.0  # 95: 6 of 10 within 5 days, 1 in 6-14 DTE
    put[2, 1] = -1.0
    put[3, 1] = -3.0
    put[3, 0] = -9.0
    put[1, 2] = -0.2
    dte = (expiries - np.datetime64("2025-06-02", "D")).astype(int)
    return GammaStructure(spot, strikes, expiries, dte, call, put)


def test_walls_expiry_split_and_monthly_magnet():
    gs = _structure()
    w = signal_walls(gs)
    # Calls by strike: 101: 0.5, 105: 10, 110: 3 -> top 20% is 105 only; puts: 90: 9, 95: 10 -> 95 (and 90 at the cut?)
    assert w.call_above == 105.0 and w.call_nearest == 105.0
    assert w.put_below == 95.0
    e = wall_expiry(gs, 105.0, "call")
    assert e.soon_ratio == pytest.approx(0.8) and e.first_dte == 1 and e.first_expiry == dt.date(2025, 6, 3)
    p = wall_expiry(gs, 95.0, "put")
    assert p.soon_ratio == pytest.approx(0.6) and p.next_ratio == pytest.approx(0.1)
    assert is_monthly_expiry(gs.expiries).tolist() == [False, False, False, True]
    assert is_monthly_expiry(np.array(["2025-04-17", "2026-01-16", "2026-01-15"], dtype="datetime64[D]")).tolist() \
        == [True, True, True]  # Good Friday 2025: Thursday; Jan 2026: third Friday (and its eve)
    m = monthly_magnets(gs)
    # Monthly (06-20, 18 DTE): above spot 105 holds 2, below 90 holds 9 and 95 holds 3; the day's
    # largest strike is 95 (6 + 1 + 3 = 10) -> strengths 20 and 90.
    assert (m.above, m.above_strength) == (105.0, pytest.approx(20.0))
    assert (m.below, m.below_strength) == (90.0, pytest.approx(90.0))
