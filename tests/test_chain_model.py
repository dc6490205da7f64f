"""The modelled chain (SPEC §4.2): deterministic, era-correct, OI where the price has been, and a
net GEX that follows the price path the way dealer positioning does."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.calendar import sessions_between
from gexhistory.engine.chain_model import (KIND_WEIGHT, MIN_OI_SHARE, STRIKE_SPAN, WEDNESDAY_FROM, ModelParams,
                                            _option_flow, _realised_vol, list_expiries, strike_step)
from gexhistory.pipeline.model_chains import chain_model
from gexhistory.pipeline.validate import modelled_close_gex


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
    full = chain_model("SPY", dates, close)
    # a window that starts later, but before every listing live on the target day (and 20 sessions
    # of realised vol before that), gives the very same chain
    k = next(i for i, d in enumerate(dates) if d >= dt.date(2015, 1, 2))
    late = chain_model("SPY", dates[k:], close[k:])
    a, b = full.chain_for(target), late.chain_for(target - k)
    assert len(a) > 100
    _chains_equal(a, b)
    _chains_equal(a, chain_model("SPY", dates, close).chain_for(target))  # and twice the same


@settings(max_examples=6, deadline=None)
@given(drift=st.floats(-0.001, 0.001), amp=st.floats(0.0, 0.02), freq=st.floats(0.1, 3.0),
       shock_at=st.integers(0, 560), shock=st.floats(-0.08, 0.08), symbol=st.sampled_from(["SPY", "SPX", "QQQ"]))
def test_chain_does_not_depend_on_where_the_prices_start(drift, amp, freq, shock_at, shock, symbol):
    r = drift + amp * np.sin(np.arange(600) * freq)
    r[shock_at] += shock
    dates, close = _path(dt.date(2016, 1, 4), dt.date(2018, 5, 31), r)
    target = len(dates) - 1
    k = next(i for i, d in enumerate(dates) if d >= dates[target] - dt.timedelta(days=430))
    _chains_equal(chain_model(symbol, dates, close).chain_for(target),
                  chain_model(symbol, dates[k:], close[k:]).chain_for(target - k))


def test_chain_size_stays_small():
    dates, close = _path(dt.date(2022, 1, 3), dt.date(2023, 12, 29), _wavy(600))
    model = chain_model("SPX", dates, close)
    sizes = [len(model.chain_for(i)) for i in range(300, len(dates), 25)]
    assert max(sizes) < 6000  # dailies era: many expiries, still a few thousand contracts


def test_open_interest_rolls_off_at_expiry():
    dates, close = _path(dt.date(2014, 6, 2), dt.date(2015, 6, 30), _wavy(300))
    model = chain_model("SPY", dates, close)
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
    model = chain_model("SPX", dates, close)
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
    ex18 = {e.date: e.kind for e in list_expiries("SPY", sessions_between(dt.date(2018, 1, 1), dt.date(2018, 12, 31)))}
    for wednesday in (dt.date(2018, 7, 4), dt.date(2018, 12, 5)):  # Independence Day; national mourning
        assert wednesday not in ex18 and ex18[wednesday - dt.timedelta(days=1)] == "daily"


def test_monthlies_expire_on_the_saturday_until_january_2015():
    """OCC's calendar: a standard monthly's expiration date was the Saturday after the third Friday until
    the February 2015 expiry (2015-02-20), the first on its Friday. The moments are written out by hand."""
    def at(*ymd: int) -> float:  # 16:00 New York time on that day
        return dt.datetime(*ymd, 16, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()

    for sym in ("SPX", "SPY"):
        ex = {e.date: e for e in list_expiries(sym, sessions_between(dt.date(2014, 1, 1), dt.date(2015, 3, 31)))}
        assert ex[dt.date(2014, 12, 19)].kind == "monthly" and ex[dt.date(2014, 12, 19)].close_ts == at(2014, 12, 20)
        assert ex[dt.date(2015, 1, 16)].close_ts == at(2015, 1, 17)  # the last Saturday one
        assert ex[dt.date(2015, 2, 20)].kind == "monthly" and ex[dt.date(2015, 2, 20)].close_ts == at(2015, 2, 20)
        assert ex[dt.date(2015, 3, 20)].close_ts == at(2015, 3, 20)
        # Good Friday 2014-04-18 was the third Friday: last session Thursday, still the Saturday's expiry
        assert ex[dt.date(2014, 4, 17)].kind == "monthly" and ex[dt.date(2014, 4, 17)].close_ts == at(2014, 4, 19)
        # weeklies and quarterlies expired on their session then as now
        assert ex[dt.date(2014, 12, 12)].kind == "weekly" and ex[dt.date(2014, 12, 12)].close_ts == at(2014, 12, 12)
        assert ex[dt.date(2014, 12, 31)].kind == "quarterly" and ex[dt.date(2014, 12, 31)].close_ts == at(2014, 12, 31)


def test_quarterlies_on_the_last_session_of_the_quarter():
    ex = {e.date: e.kind for e in list_expiries("SPY", sessions_between(dt.date(2016, 1, 1), dt.date(2016, 12, 31)))}
    assert sorted(d for d, k in ex.items() if k == "quarterly") == [
        dt.date(2016, 3, 31), dt.date(2016, 6, 30), dt.date(2016, 9, 30), dt.date(2016, 12, 30)]
    assert ex[dt.date(2016, 3, 18)] == "monthly"  # and the monthly stays on the third Friday


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


# ---------------------------------------------------------------- chains_for: the same model, batched
def _stepwise_chains(symbol, dates, close, indices, p=ModelParams()):
    """The model as chain_for computed it before chains_for existed (one session per step, calls then
    puts), kept here as the reference the batched implementation must reproduce."""
    rv = _realised_vol(close)
    flow = _option_flow(symbol, rv, p)

    def iv_level(i):
        v = rv[max(i - 1, 0)]
        return max(0.05, (v if np.isfinite(v) else p.iv_long_run) * p.iv_premium)

    ex = [e for e in list_expiries(symbol, sessions_between(dates[0], dates[-1] + dt.timedelta(days=375)))
          if e.date >= dates[0]]
    exp_d = np.array([e.date for e in ex], dtype="datetime64[D]")
    listed = np.array([e.listed for e in ex], dtype="datetime64[D]")
    kind_w = np.array([p.monthly_weight if e.kind == "monthly" else KIND_WEIGHT[e.kind] for e in ex])
    midweek = WEDNESDAY_FROM.get(symbol)
    n_k = int(2 * STRIKE_SPAN / p.step_fraction) + 3
    strikes, has = np.zeros((len(ex), n_k)), np.zeros(len(ex), bool)
    oi = [np.zeros((len(ex), n_k)), np.zeros((len(ex), n_k))]
    done, out = -1, []
    for i in indices:
        while done < i - 1:
            done += 1
            day = np.datetime64(dates[done], "D")
            live = np.flatnonzero((listed <= day) & (exp_d >= day))
            if live.size == 0:
                continue
            for r in live[~has[live]]:
                step = strike_step(close[done], p.step_fraction)
                grid = round(close[done] / step) * step + step * (np.arange(n_k) - n_k // 2)
                strikes[r], has[r] = np.where(grid > 0, grid, np.nan), True
            k, dte = strikes[live], (exp_d[live] - day).astype(float)
            sd = iv_level(done + 1) * np.sqrt(np.maximum(dte, 1.0) / 365.0)[:, None]
            x = np.log(k / close[done])
            unit = 2 * np.nanmin(np.diff(k, axis=1), axis=1)[:, None]
            round_k = np.isclose(np.mod(k, unit), 0) | np.isclose(np.mod(k, unit), unit)
            boost = np.where(round_k, p.round_strike_boost, 1.0)
            # the DTE decay of the era: shorter once the product has mid-week expiries
            decay = p.dte_decay_days_midweek if midweek and dates[done] >= midweek else p.dte_decay_days
            share = kind_w[live] * np.exp(-dte / decay)
            share /= share.sum()
            # the put share of the flow rises with realised vol (relative to the long-run level)
            vol = min(max((rv[done] if np.isfinite(rv[done]) else p.iv_long_run) / p.iv_long_run, 0.25), 4.0)
            call_flow = flow[done] / (1 + p.put_call_volume * vol ** p.put_call_vol_elasticity)
            for side, c, w, f in ((0, p.call_center_sd, p.call_width_sd, call_flow),
                                  (1, p.put_center_sd, p.put_width_sd, flow[done] - call_flow)):
                wt = np.nan_to_num(np.exp(-0.5 * ((x - c * sd) / (w * sd + 0.005)) ** 2) * boost)
                wt /= np.maximum(wt.sum(axis=1, keepdims=True), 1e-12)
                oi[side][live] = oi[side][live] * (1.0 - p.oi_turnover) + f * share[:, None] * wt
        day = np.datetime64(dates[i], "D")
        live = np.flatnonzero((exp_d >= day) & has & ((exp_d - day).astype(int) <= p.dte_window))
        k, coi, poi = strikes[live], np.round(oi[0][live]), np.round(oi[1][live])
        dte = (exp_d[live] - day).astype(float)[:, None]
        term = p.iv_long_run + (iv_level(i) - p.iv_long_run) * np.exp(-dte / p.iv_term_days)
        m = np.log(k / close[max(i - 1, 0)]) / (term * np.sqrt(np.maximum(np.maximum(dte, 0.5) / 365, 7 / 365)))
        iv = np.clip(term * (1 + p.skew_slope * m + p.skew_curve * m * m), 0.05, 3.0)
        floor = max(MIN_OI_SHARE * max(coi.max(initial=0.0), poi.max(initial=0.0)), 1.0)
        c_ok, p_ok = np.isfinite(k) & (coi >= floor), np.isfinite(k) & (poi >= floor)
        exp_day = np.broadcast_to(exp_d[live][:, None], k.shape)
        out.append(dict(expiry=np.r_[exp_day[c_ok], exp_day[p_ok]], strike=np.r_[k[c_ok], k[p_ok]],
                        is_call=np.r_[np.ones(c_ok.sum(), bool), np.zeros(p_ok.sum(), bool)],
                        open_interest=np.r_[coi[c_ok], poi[p_ok]], iv=np.r_[iv[c_ok], iv[p_ok]]))
    return out


def _contract_order(chain) -> np.ndarray:
    return np.lexsort((~chain.is_call, chain.strike, chain.expiry_close))


@pytest.mark.parametrize("symbol, start, end, scale", [
    ("SPY", dt.date(2015, 1, 2), dt.date(2016, 12, 30), 0.1),
    ("SPX", dt.date(2022, 1, 3), dt.date(2023, 6, 30), 2.0),  # every-day expiries
    ("ZZZZ", dt.date(2016, 1, 4), dt.date(2017, 6, 30), 0.005),  # near $10: the grid reaches below zero
])
def test_chains_are_those_of_the_stepwise_model(symbol, start, end, scale):
    dates, close = _path(start, end, _wavy(800, drift=0.0003, amp=0.012))
    close = close * scale
    indices = list(range(0, len(dates), 7)) + [len(dates) - 1]
    got = chain_model(symbol, dates, close).chains_for(indices)
    want = _stepwise_chains(symbol, dates, close, indices)
    assert sum(len(c) for c in got) > 1000
    for chain, ref in zip(got, want):
        order = np.lexsort((~ref["is_call"], ref["strike"], ref["expiry"]))
        for f in ("expiry", "strike", "is_call", "open_interest"):
            np.testing.assert_array_equal(getattr(chain, f), ref[f][order], err_msg=f)
        # log(k) - log(spot) instead of log(k / spot): the same IV to rounding
        np.testing.assert_allclose(chain.iv, ref["iv"][order], rtol=1e-12)


def test_contracts_ordered_by_expiry_strike_call_then_put():
    dates, close = _path(dt.date(2022, 1, 3), dt.date(2023, 3, 31), _wavy(400))
    for chain in chain_model("SPX", dates, close).chains_for(range(250, len(dates), 5)):
        assert len(chain) > 100
        np.testing.assert_array_equal(_contract_order(chain), np.arange(len(chain)))
        keys = set(zip(chain.expiry_close.tolist(), chain.strike.tolist(), chain.is_call.tolist()))
        assert len(keys) == len(chain)  # no contract twice
        np.testing.assert_array_equal(chain.expiry.astype("datetime64[s]").astype(float) < chain.expiry_close, True)


_HYP_PATH = _path(dt.date(2016, 1, 4), dt.date(2018, 5, 31), _wavy(620, drift=0.0002, amp=0.011))


@lru_cache(maxsize=None)
def _every_chain(symbol):
    dates, close = _HYP_PATH
    return chain_model(symbol, dates, close).chains_for(range(len(dates)))


@settings(max_examples=10, deadline=None)
@given(data=st.data(), symbol=st.sampled_from(["SPY", "SPX", "QQQ"]))
def test_a_chain_does_not_depend_on_the_chains_computed_with_it(data, symbol):
    dates, close = _HYP_PATH
    picked = sorted(data.draw(st.sets(st.integers(0, len(dates) - 1), min_size=1, max_size=90)))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(picked)), max_size=4)))
    batches = [picked[a:b] for a, b in zip([0, *cuts], [*cuts, len(picked)]) if b > a]
    if data.draw(st.booleans()):
        batches.reverse()  # an earlier index restarts the state
    model = chain_model(symbol, dates, close)
    for batch in batches:
        how = data.draw(st.sampled_from(["chains_for", "iter_chains", "chain_for"]))
        if how == "chain_for":
            got = [model.chain_for(i) for i in batch]
        else:
            got = list(getattr(model, how)(batch))
        for i, chain in zip(batch, got):
            assert chain.as_of == dates[i]
            _chains_equal(chain, _every_chain(symbol)[i])


def test_chain_for_alone_equals_chains_for_over_a_long_list():
    dates, close = _HYP_PATH
    every = _every_chain("SPY")
    assert len(every[0]) == 0 and len(every[-1]) > 300  # nothing listed before the first session
    for i in (1, 40, 299, 300, len(dates) - 1):
        _chains_equal(chain_model("SPY", dates, close).chain_for(i), every[i])
    model = chain_model("SPY", dates, close)
    _chains_equal(model.chain_for(500), every[500])
    _chains_equal(model.chain_for(120), every[120])  # back in time: the state restarts


def test_bad_indices_are_refused():
    dates, close = _HYP_PATH
    model = chain_model("SPY", dates, close)
    assert model.chains_for([]) == []
    for bad in ([5, 3], [-1], [len(dates)]):
        with pytest.raises(ValueError):
            model.chains_for(bad)
