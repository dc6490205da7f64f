"""The modelled chain (SPEC §4.2): deterministic, era-correct, OI where the price has been, and a
net GEX that follows the price path the way dealer positioning does."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.calendar import sessions_between
from gexhistory.engine.chain_model import ChainModel, ModelParams, list_expiries, strike_step
from gexhistory.engine.validation import modelled_close_gex


def _path(start: dt.date, end: dt.date, daily_returns) -> tuple[list[dt.date], np.ndarray]:
    dates = [s.date for s in sessions_between(start, end)]
    r = np.resize(np.asarray(daily_returns, float), len(dates))
    return dates, 2000.0 * np.exp(np.cumsum(r))


def _wavy(n: int, drift: float = 0.0004, amp: float = 0.006) -> np.ndarray:
    # a deterministic, gently oscillating path: realised vol near 10%, no randomness
    return drift + amp * np.sin(np.arange(n) * 2.1)


def _chains_equal(a, b) -> None:
    for f in ("expiry", "expiry_close", "strike", "is_call", "open_interest", "iv"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def test_same_prices_same_chain_whatever_the_window():
    dates, close = _path(dt.date(2014, 1, 2), dt.date(2016, 6, 30), _wavy(700))
    target = dates.index(dt.date(2016, 3, 1))
    full = ChainModel("SPY", dates, close)
    # a window that starts later, but before every listing live on the target day (and 20 sessions
    # of realised vol before that), gives the very same chain
    k = next(i for i, d in enumerate(dates) if d >= dt.date(2015, 1, 2))
    late = ChainModel("SPY", dates[k:], close[k:])
    a, b = full.chain_for(target), late.chain_for(target - k)
    assert len(a) > 100
    _chains_equal(a, b)
    _chains_equal(a, ChainModel("SPY", dates, close).chain_for(target))  # and twice the same


@settings(max_examples=6, deadline=None)
@given(drift=st.floats(-0.001, 0.001), amp=st.floats(0.0, 0.02), freq=st.floats(0.1, 3.0),
       shock_at=st.integers(0, 560), shock=st.floats(-0.08, 0.08), symbol=st.sampled_from(["SPY", "SPX", "QQQ"]))
def test_chain_does_not_depend_on_where_the_prices_start(drift, amp, freq, shock_at, shock, symbol):
    r = drift + amp * np.sin(np.arange(600) * freq)
    r[shock_at] += shock
    dates, close = _path(dt.date(2016, 1, 4), dt.date(2018, 5, 31), r)
    target = len(dates) - 1
    k = next(i for i, d in enumerate(dates) if d >= dates[target] - dt.timedelta(days=430))
    _chains_equal(ChainModel(symbol, dates, close).chain_for(target),
                  ChainModel(symbol, dates[k:], close[k:]).chain_for(target - k))


def test_chain_size_stays_small():
    dates, close = _path(dt.date(2022, 1, 3), dt.date(2023, 12, 29), _wavy(600))
    model = ChainModel("SPX", dates, close)
    sizes = [len(model.chain_for(i)) for i in range(300, len(dates), 25)]
    assert max(sizes) < 6000  # dailies era: many expiries, still a few thousand contracts


def test_open_interest_rolls_off_at_expiry():
    dates, close = _path(dt.date(2014, 6, 2), dt.date(2015, 6, 30), _wavy(300))
    model = ChainModel("SPY", dates, close)
    expiry = dt.date(2015, 3, 20)  # March 2015 monthly (third Friday)
    i = dates.index(expiry)
    on_day = model.chain_for(i)
    after = model.chain_for(i + 1)
    e = np.datetime64(expiry, "D")
    assert (on_day.expiry == e).sum() > 0 and on_day.open_interest[on_day.expiry == e].sum() > 0
    assert (after.expiry == e).sum() == 0
    assert (after.expiry > np.datetime64(dates[i + 1], "D") - 1).all()


def test_oi_on_round_strikes_puts_below_calls_above():
    dates, close = _path(dt.date(2014, 1, 2), dt.date(2015, 6, 30), _wavy(400, drift=0.0))
    model = ChainModel("SPX", dates, close)
    i = len(dates) - 1
    chain = model.chain_for(i)
    spot = close[i - 1]
    calls, puts = chain.is_call, ~chain.is_call
    call_center = np.average(chain.strike[calls], weights=chain.open_interest[calls])
    put_center = np.average(chain.strike[puts], weights=chain.open_interest[puts])
    assert put_center < spot < call_center
    # strikes on the product's grid, and round strikes (multiples of twice the step) hold more OI
    step = strike_step(spot, ModelParams().step_fraction)
    assert np.allclose(np.mod(chain.strike, step), 0) or np.allclose(np.mod(chain.strike, step), step)
    near = np.abs(chain.strike / spot - 1) < 0.03
    round_k = np.isclose(np.mod(chain.strike, 2 * step), 0) | np.isclose(np.mod(chain.strike, 2 * step), 2 * step)
    oi = chain.open_interest
    assert oi[near & round_k].mean() > 1.3 * oi[near & ~round_k].mean()


def _kinds(symbol: str, year: int) -> tuple[Counter, Counter]:
    ex = list_expiries(symbol, sessions_between(dt.date(year, 1, 1), dt.date(year, 12, 31)))
    return Counter(e.kind for e in ex), Counter(e.date.weekday() for e in ex if e.kind == "daily")


def test_era_rules():
    kinds, _ = _kinds("SPY", 2015)
    assert kinds["daily"] == 0 and kinds["monthly"] == 12 and kinds["quarterly"] == 4 and kinds["weekly"] >= 35
    _, days = _kinds("SPX", 2017)
    assert days[0] >= 45 and days[2] >= 48 and days[1] + days[3] <= 10  # Mondays and Wednesdays
    _, days = _kinds("SPY", 2017)
    assert days[2] >= 48 and days[0] == 0  # SPY Mondays only from 2018
    _, days = _kinds("SPY", 2019)
    assert days[0] >= 45
    _, days = _kinds("QQQ", 2017)
    assert sum(days.values()) == 0
    for sym in ("SPY", "QQQ", "SPX"):
        ex = list_expiries(sym, sessions_between(dt.date(2023, 1, 1), dt.date(2023, 12, 31)))
        every = {e.date for e in ex}
        assert every == {s.date for s in sessions_between(dt.date(2023, 1, 1), dt.date(2023, 12, 31))}
    assert list_expiries("ZZZZ", sessions_between(dt.date(2023, 1, 1), dt.date(2023, 12, 31)))[0].kind == "monthly"


def test_etf_weeklies_start_in_june_2010():
    ex = list_expiries("SPY", sessions_between(dt.date(2010, 1, 1), dt.date(2010, 12, 31)))
    weeklies = sorted(e.date for e in ex if e.kind == "weekly")
    assert weeklies[0] == dt.date(2010, 6, 11)
    assert not [e for e in ex if e.kind == "daily"]


def test_holiday_moves_expiries():
    ex = {e.date: e.kind for e in list_expiries("SPX", sessions_between(dt.date(2017, 1, 1), dt.date(2017, 12, 31)))}
    ex19 = {e.date: e.kind for e in list_expiries("SPY", sessions_between(dt.date(2019, 1, 1), dt.date(2019, 12, 31)))}
    assert ex19[dt.date(2019, 4, 18)] == "monthly"  # Good Friday 2019-04-19 was the third Friday
    assert dt.date(2019, 4, 19) not in ex19
    assert ex[dt.date(2017, 1, 17)] == "daily"  # MLK Monday: the Monday weekly expires on Tuesday
    assert dt.date(2017, 1, 16) not in ex


def _close_gex(dates, close):
    return modelled_close_gex("SPX", dates, close)


def test_sharp_selloff_turns_net_gex_negative_and_calm_rally_positive():
    n_calm = 320
    calm = _wavy(n_calm, drift=0.0006, amp=0.005)
    crash = np.full(12, -0.011)  # about -12% in 12 sessions, after a calm rally
    dates, close = _path(dt.date(2013, 1, 2), dt.date(2014, 5, 30), np.r_[calm, crash, _wavy(40, 0.0, 0.02)])
    gex = _close_gex(dates[: n_calm + 13], close[: n_calm + 13])
    assert np.median(gex[250:n_calm]) > 0  # calm rally: long gamma
    assert gex[n_calm + 12] < 0  # at the bottom of the sell-off: short gamma
    assert (gex[n_calm + 6: n_calm + 13] < 0).mean() >= 0.8
