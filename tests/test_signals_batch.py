"""The signal step's batch path against its per-session reference: same rows, value for value.

`signal_structures` must give, session by session, exactly what the plain per-session functions of
tests/reference_structure.py give (every float to the last bit), on modelled chains of a synthetic SPY path and
on hand-built and random chains with the degenerate cases; a session's result must not depend on the
other sessions of its batch. `rows_for_many` must give the rows of the per-session path (below: the
body rows_for had before the batch API), and the vectorised pattern conditions those of a plain
reading of SPEC §6 (also below, the scalar code they replace).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.pipeline.compute import compute_sessions
from gexhistory.pipeline.signals import MIN_SCALE_SESSIONS, SignalContext, _f, typical_abs_gex
from gexhistory.calendar import ET, format_ts, sessions_between
from gexhistory.engine import structure as gsb
from gexhistory.engine import rsi as rsi_mod
from gexhistory.engine import signals as sg
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.chain_model import ModelParams
from gexhistory.pipeline.model_chains import chain_model
from gexhistory.engine.exposure import Conventions
from reference_structure import (_significant, gamma_structure, monthly_magnets, net_expiring_by, signal_structure,
                                 signal_walls, wall_expiry, week_end)
from gexhistory.sources.synthetic import SyntheticMarket


# ---------------------------------------------------------------- comparison helpers
def same_structure(a, b) -> bool:
    """Dataclass equality, NaN equal to NaN (a chain with a missing IV can make a value NaN)."""
    def flat(x):
        return [v for part in dataclasses.astuple(x) for v in (part if isinstance(part, tuple) else (part,))]
    return all(u == v or (isinstance(u, float) and isinstance(v, float) and math.isnan(u) and math.isnan(v))
               for u, v in zip(flat(a), flat(b)))


def assert_batch_equals_reference(chains, spots, closes):
    got = gsb.signal_structures(chains, spots, closes)
    for j, (c, s, t) in enumerate(zip(chains, spots, closes)):
        ref = signal_structure(c, s, t)
        assert same_structure(got.structure(j), ref), (j, got.structure(j), ref)
    return got


def without_created_at(rows):
    return [{k: v for k, v in r.items() if k != "created_at"} for r in rows]


# ---------------------------------------------------------------- modelled chains
@functools.lru_cache(maxsize=None)
def modelled(n_sessions: int, start: dt.date, seed: int = 7, symbol: str = "SPY"):
    """Chains of the chain model on a synthetic path, with a close spot off the daily close."""
    bars = SyntheticMarket(seed).daily_bars(symbol, start - dt.timedelta(days=500), start + dt.timedelta(days=3 * n_sessions))
    model = chain_model(symbol, bars.dates, bars.close, bars.volume, ModelParams())
    by_date = {s.date: s for s in sessions_between(bars.dates[0], bars.dates[-1])}
    idx = [i for i, d in enumerate(bars.dates) if d >= start][:n_sessions]
    chains = [model.chain_for(i) for i in idx]
    spots = [float(bars.close[i]) * (1 + 0.003 * math.sin(i)) for i in idx]
    return chains, spots, [by_date[bars.dates[i]].close for i in idx]


@pytest.mark.parametrize("start,symbol", [(dt.date(2013, 2, 1), "SPY"), (dt.date(2024, 11, 20), "SPY"),
                                          (dt.date(2020, 3, 2), "SPX")])
def test_modelled_chains_batch_equals_scalar_functions(start, symbol):
    chains, spots, closes = modelled(45, start, symbol=symbol)
    got = assert_batch_equals_reference(chains, spots, closes)
    assert np.isfinite(got.call_wall).sum() > 10 and np.isfinite(got.magnet_above_strength).sum() > 10


def test_small_chunks_change_nothing(monkeypatch):
    chains, spots, closes = modelled(30, dt.date(2022, 6, 1))
    whole = gsb.signal_structures(chains, spots, closes)
    monkeypatch.setattr(gsb, "CHUNK_CONTRACTS", 3000)
    small = gsb.signal_structures(chains, spots, closes)
    assert all(same_structure(whole.structure(j), small.structure(j)) for j in range(len(chains)))


# ---------------------------------------------------------------- hand-built chains
DAY = dt.date(2024, 3, 14)  # a Thursday: the 15th of March is a monthly expiry
CLOSE = dt.datetime.combine(DAY, dt.time(16), tzinfo=ET)


def chain_of(rows, day: dt.date = DAY, multiplier: float = 100.0) -> OptionChain:
    """rows: (days to expiry, strike, is_call, oi, iv[, hour of the expiry close])."""
    rows = [r if len(r) == 6 else (*r, 16) for r in rows]
    exp = [day + dt.timedelta(days=r[0]) for r in rows]
    closes = [dt.datetime.combine(e, dt.time(r[5]), tzinfo=ET).timestamp() for e, r in zip(exp, rows)]
    return OptionChain("TEST", day, np.array(exp, dtype="datetime64[D]"), np.array(closes, dtype=float),
                       np.array([r[1] for r in rows], dtype=float), np.array([r[2] for r in rows], dtype=bool),
                       np.array([r[3] for r in rows], dtype=float), np.array([r[4] for r in rows], dtype=float),
                       "test", multiplier=multiplier)


def grid(expiries=(1, 2, 8, 15, 22, 36, 50), lo=460.0, hi=540.0, step=5.0, calls=True, puts=True):
    rows = []
    for n, d in enumerate(expiries):
        for j, k in enumerate(np.arange(lo, hi + step / 2, step)):
            x = math.log(k / 500.0)
            iv = 0.18 - 0.3 * x + 0.01 * n
            if calls:
                rows.append((d, k, True, 1000 + 900 * math.exp(-((x - 0.03) / 0.04) ** 2) + 37 * ((j * 7 + n) % 5), iv))
            if puts:
                rows.append((d, k, False, 1200 + 1500 * math.exp(-((x + 0.04) / 0.05) ** 2) + 29 * ((j * 3 + n) % 7), iv))
    return rows


CASES = {
    "full": grid(),
    "empty": [],
    "calls_only": grid(puts=False),
    "puts_only": grid(calls=False),
    "all_expired_at_close": [(0, 500.0, True, 100, 0.2), (-3, 505.0, False, 100, 0.2), (0, 495.0, False, 50, 0.3)],
    "beyond_window_or_no_oi": [(90, 500.0, True, 100, 0.2), (5, 505.0, False, 0, 0.2), (8, 510.0, True, 40, 0.2)],
    "one_strike_many_expiries": [(d, 500.0, c, 100 + d, 0.2 + 0.001 * d) for d in range(1, 40, 3) for c in (True, False)],
    "one_strike_one_side": [(d, 520.0, True, 300, 0.25) for d in (1, 2, 3, 8, 9, 10, 15, 16, 17, 22)],
    "one_expiry": [(1, k, c, 500, 0.2) for k in (490.0, 495.0, 500.0, 505.0, 510.0) for c in (True, False)],
    # significant calls equidistant from a spot of 500: the lower strike is "nearest" (np.argmin)
    "equidistant": [(8, 495.0, True, 5000, 0.2), (8, 505.0, True, 5000, 0.2)]
                   + [(8, k, True, 1, 0.2) for k in (400.0, 420.0, 440.0, 560.0, 580.0, 600.0, 620.0, 640.0)],
    "no_wall_above": [(d, k, c, 800, 0.2) for d in (1, 8) for k in (440.0, 450.0, 460.0) for c in (True, False)],
    "duplicates_in_a_cell": grid(expiries=(1, 8)) + [(1, 500.0, True, 333, 0.31), (8, 505.0, False, 77, 0.12)],
    "am_and_pm_settlement": grid(expiries=(1, 36)) + [(36, k, c, 400, 0.2, 9) for k in (490.0, 510.0) for c in (True, False)],
    "off_grid_strikes": [(d, 500.0 + k / 3, c, 100 + k, 0.2) for d in (2, 9) for k in range(-20, 21, 3) for c in (True, False)],
    "missing_iv": grid(expiries=(1, 8)) + [(8, 500.0, True, 100, float("nan"))],
    "far_dated_listing": grid(expiries=(2, 30)) + [(365 * 200, 500.0, True, 100, 0.2)],
}


def with_undated(rows, kept: bool) -> OptionChain:
    """A chain with one contract whose expiry date is missing (NaT), its expiry close known or not."""
    c = chain_of(rows)
    c.expiry = np.append(c.expiry, np.datetime64("NaT", "D"))
    c.expiry_close = np.append(c.expiry_close, CLOSE.timestamp() + 86400.0 if kept else np.nan)
    for name, v in (("strike", 500.0), ("is_call", True), ("open_interest", 100.0), ("iv", 0.2)):
        setattr(c, name, np.append(getattr(c, name), v))
    return c


@pytest.mark.parametrize("kept", [False, True])
def test_missing_expiry_date(kept):
    chains, spots, closes = modelled(3, dt.date(2024, 3, 11))
    assert_batch_equals_reference(chains + [with_undated(grid(), kept)], spots + [500.0], closes + [CLOSE])


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_lone_session_equals_scalar_functions(name):
    """A chunk of one session is the batch's too (no separate per-session path)."""
    assert_batch_equals_reference([chain_of(CASES[name])], [500.0], [CLOSE])
    assert_batch_equals_reference([with_undated(CASES[name], True)], [500.0], [CLOSE])


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_built_chain_in_a_batch_equals_scalar_functions(name):
    # the case among modelled chains, in one chunk with them
    chains, spots, closes = modelled(3, dt.date(2024, 3, 11))
    assert_batch_equals_reference(chains + [chain_of(CASES[name])] + chains, spots + [500.0] + spots,
                                  closes + [CLOSE] + closes)


def test_every_hand_built_chain_in_one_batch_with_several_multipliers():
    names = sorted(CASES)
    chains = [chain_of(CASES[n], multiplier=10.0 if i % 3 == 0 else 100.0) for i, n in enumerate(names)]
    got = assert_batch_equals_reference(chains, [500.0] * len(names), [CLOSE] * len(names))
    walls = got.structure(names.index("equidistant")).walls
    assert (walls.call_nearest, walls.call_above) == (495.0, 505.0)
    assert got.structure(names.index("no_wall_above")).walls.call_above is None
    assert got.structure(names.index("empty")) == signal_structure(chain_of([]), 500.0, CLOSE)


def test_hand_checked_values():
    """A two-expiry chain small enough to check by hand against gamma_structure's matrices."""
    rows = [(1, 490.0, False, 900, 0.2), (1, 510.0, True, 800, 0.2), (8, 510.0, True, 200, 0.2),
            (8, 490.0, False, 100, 0.2), (1, 500.0, True, 10, 0.2), (8, 500.0, False, 10, 0.2)]
    chain = chain_of(rows)
    got = gsb.signal_structures([chain, chain_of(grid())], [500.0, 500.0], [CLOSE, CLOSE]).structure(0)
    gs = gamma_structure(chain, 500.0, CLOSE)
    calls_510, puts_490 = gs.call[:, 2], -gs.put[:, 0]
    assert got.walls.call_above == 510.0 and got.walls.put_below == 490.0
    assert got.walls.call_above_gamma == gs.call[:, 2].sum()
    assert got.call_expiry.soon_ratio == calls_510[0] / calls_510.sum()
    assert got.put_expiry.soon_ratio == puts_490[0] / puts_490.sum() and got.put_expiry.first_dte == 1
    assert got.call_expiry.first_expiry == DAY + dt.timedelta(days=1)
    assert got.magnets.expiry is None  # 2024-03-15 is 1 day out, 2024-03-22 is not a monthly
    assert got.net_this_week == (gs.call[0] + gs.put[0]).sum() == net_expiring_by(gs, week_end(DAY))


# ---------------------------------------------------------------- random chains and batch splits
contract = st.tuples(st.sampled_from([-1, 0, 1, 2, 3, 5, 8, 9, 13, 15, 22, 36, 44, 61, 62, 90]),
                     st.sampled_from([380.0, 450.0, 480.0, 495.0, 497.5, 500.0, 502.5, 505.0, 520.0, 560.0, 620.0]),
                     st.booleans(), st.sampled_from([0, 1, 10, 250, 3000]),
                     st.sampled_from([0.05, 0.1, 0.2, 0.35, 0.9]))
session = st.tuples(st.lists(contract, max_size=40), st.floats(430.0, 570.0), st.integers(0, 40))


def random_sessions(draw_sessions):
    chains, spots, closes = [], [], []
    for rows, spot, shift in draw_sessions:
        day = DAY + dt.timedelta(days=shift)
        chains.append(chain_of(rows, day))
        spots.append(spot)
        closes.append(dt.datetime.combine(day, dt.time(16), tzinfo=ET))
    return chains, spots, closes


@settings(max_examples=40, deadline=None)
@given(st.lists(session, min_size=2, max_size=8))
def test_random_chains_batch_equals_scalar_functions(sessions):
    assert_batch_equals_reference(*random_sessions(sessions))


gappy_contract = st.tuples(st.sampled_from([-1, 0, 1, 2, 5, 8, 13, 22, 36]), st.sampled_from([450.0, 495.0, 500.0, 505.0, 560.0]),
                           st.booleans(), st.sampled_from([0, 10, 250, 3000]),
                           st.sampled_from([0.1, 0.2, 0.35, float("nan"), 0.0]), st.booleans())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(gappy_contract, max_size=25), st.sampled_from([480.0, 500.0, 520.0, float("nan")])),
                min_size=1, max_size=6))
def test_missing_numbers_give_what_numpy_gives_for_one_session(sessions):
    """NaN or zero IVs (NaN gamma), undated expiries (NaT) and NaN spots, alone and among other sessions."""
    chains, spots = [], []
    for rows, spot in sessions:
        c = chain_of([r[:5] for r in rows])
        c.expiry = np.where([r[5] and r[0] % 3 == 0 for r in rows], np.datetime64("NaT", "D"), c.expiry)
        chains.append(c)
        spots.append(spot)
    assert_batch_equals_reference(chains, spots, [CLOSE] * len(chains))


@settings(max_examples=25, deadline=None)
@given(st.lists(session, min_size=3, max_size=10), st.lists(st.integers(1, 9), min_size=1, max_size=5),
       st.sampled_from([500, 3000, 1 << 16]))
def test_a_sessions_values_do_not_depend_on_its_batch(sessions, splits, chunk):
    chains, spots, closes = random_sessions(sessions)
    model_chains, model_spots, model_closes = modelled(4, dt.date(2019, 5, 1))
    chains, spots, closes = chains + model_chains, spots + model_spots, closes + model_closes
    whole = gsb.signal_structures(chains, spots, closes)
    cuts = sorted({min(c, len(chains)) for c in np.cumsum(splits)} | {0, len(chains)})
    gsb.CHUNK_CONTRACTS, saved = chunk, gsb.CHUNK_CONTRACTS
    try:
        for a, b in zip(cuts, cuts[1:]):
            part = gsb.signal_structures(chains[a:b], spots[a:b], closes[a:b])
            for j in range(b - a):
                assert same_structure(part.structure(j), whole.structure(a + j))
    finally:
        gsb.CHUNK_CONTRACTS = saved


# ---------------------------------------------------------------- numpy's reductions, reproduced
@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from([0.0, 1.0, 2.5, 1e9, 3.3e9, 7.77e10, 1e-3, 4.2e8]), min_size=1, max_size=40),
                min_size=1, max_size=6), st.data())
def test_significant_is_numpys_percentile(rows, data):
    width = max(map(len, rows))
    gamma = np.zeros((len(rows), width))
    valid = np.zeros((len(rows), width), dtype=bool)
    for i, r in enumerate(rows):
        signs = data.draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=len(r), max_size=len(r)))
        gamma[i, :len(r)] = np.array(r) * signs
        valid[i, :len(r)] = True
    got = gsb._significant(gamma, valid)
    for i, r in enumerate(rows):
        strikes = np.arange(len(r), dtype=float)
        want, _ = _significant(strikes, gamma[i, :len(r)])
        assert np.flatnonzero(got[i]).tolist() == want.astype(int).tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-1e12, 1e12), max_size=300), min_size=1, max_size=5))
def test_masked_sums_add_like_ndarray_sum(rows):
    width = max([len(r) for r in rows] + [1])
    values = np.zeros((len(rows), width))
    mask = np.zeros_like(values, dtype=bool)
    for i, r in enumerate(rows):
        values[i, :len(r)] = r
        mask[i, :len(r)] = True
    got = gsb._masked_sums(values, mask)
    assert got.tolist() == [float(np.array(r, dtype=float).sum()) for r in rows]


# ---------------------------------------------------------------- the gamma scale's median
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e11, 1e11), max_size=80), st.integers(1, 30), st.data())
def test_typical_abs_gex_is_the_median_of_each_window(gex, window, data):
    positions = data.draw(st.lists(st.integers(0, len(gex)), max_size=10))
    got = typical_abs_gex(gex, positions, window)
    for g, p in zip(got, positions):
        prior = np.abs(np.asarray(gex[max(0, p - window):p], dtype=float))
        if prior.size < MIN_SCALE_SESSIONS:
            assert math.isnan(g)
        else:
            assert g == float(np.median(prior))


# ---------------------------------------------------------------- pattern conditions
def plain_conditions(x: sg.SignalInputs) -> dict[str, bool]:
    """SPEC §6 one session at a time with None checks (the scalar code pattern_hits replaces)."""
    def lt(a, b):
        return a is not None and b is not None and a < b

    def gt(a, b):
        return a is not None and b is not None and a > b

    def ab(v):
        return None if v is None else abs(v)

    score, ob, os_, vr, net = x.rsi_score, x.overbought, x.oversold, x.volume_ratio, x.net_gamma
    cd, pd = x.call_distance_pct, x.put_distance_pct
    return {
        "GAMMA_SQUEEZE_CASCADE": net < 0 and x.vix_spike and gt(vr, 2.0) and lt(ab(score), 50),
        "FLIP_POINT_CRITICAL": lt(x.flip_distance_pct, 0.5),
        "POST_OPEX_REGIME_FLIP": abs(x.net_gamma_this_week) > 0.5 * abs(net) and abs(net) > 1e9 * x.scale,
        "LIBERATION_TRADE": cd is not None and 0 < cd < 3 and x.call_soon_ratio > 0.7 and ob >= 3 and x.coiling,
        "FALSE_FLOOR": pd is not None and 0 < pd < 5 and x.put_soon_ratio > 0.6 and x.put_next_ratio < 0.3 and os_ < 2,
        "ZERO_DTE_PIN": x.zero_dte_gamma > 0.5 * x.pin_next_week and x.coiling,
        "DESTINATION_TRADE": gt(x.magnet_above_strength, 50) and ob >= 3 and lt(cd, 3),
        "PIN_AT_CALL_WALL": gt(score, 50) and ob >= 3 and lt(cd, 2) and net < 0,
        "EXPLOSIVE_CONTINUATION": gt(x.through_call_pct, 0.5) and ob >= 3 and gt(vr, 1.2) and net < 0,
        "PIN_AT_PUT_WALL": lt(score, -50) and os_ >= 3 and lt(pd, 2) and net < 0,
        "CAPITULATION_CASCADE": gt(x.through_put_pct, 0.5) and os_ >= 3 and gt(vr, 2.0),
        "MEAN_REVERSION_ZONE": gt(ab(score), 60) and net > 0,
        "SHORT_GAMMA_MOMENTUM": net < -5e8 * x.scale and lt(ab(score), 50),
    }


def maybe(strategy):
    return st.one_of(st.none(), strategy)


near = st.sampled_from([-1e10, -5.01e8, -5e8, -1.0, 0.0, 1.0, 5e8, 1.01e9, 2e9, 1e10])
signal_inputs = st.builds(
    sg.SignalInputs, symbol=st.just("SPY"), spot=st.sampled_from([100.0, 500.0]), net_gamma=near,
    flip=maybe(st.floats(90.0, 510.0)), rsi=st.just({}), rsi_score=maybe(st.sampled_from([-70.0, -60.0, -50.5, -50.0, 0.0, 50.0, 51.0, 61.0])),
    overbought=st.integers(0, 5), oversold=st.integers(0, 5), coiling=st.booleans(),
    volume_ratio=maybe(st.sampled_from([0.5, 1.2, 1.21, 2.0, 2.01, 3.0])), vix=maybe(st.sampled_from([12.0, 18.0, 25.0])),
    vix_previous=maybe(st.sampled_from([0.0, 14.9, 15.0, 20.0])), vix_source=st.just("atm_iv_proxy"),
    gamma_this_week=st.just(1e9), net_gamma_this_week=near, gamma_next_week=st.just(1e9),
    zero_dte_gamma=st.sampled_from([0.0, 5e9, 5.01e9]), pin_next_week=st.sampled_from([0.0, 1e10]),
    call_wall=maybe(st.floats(90.0, 530.0)), call_wall_gamma=st.just(1e8), put_wall=maybe(st.floats(90.0, 530.0)),
    put_wall_gamma=st.just(-1e8), call_wall_any=maybe(st.floats(90.0, 530.0)), put_wall_any=maybe(st.floats(90.0, 530.0)),
    call_soon_ratio=st.sampled_from([0.0, 0.7, 0.71, 1.0]), call_first_expiry=st.none(), call_first_dte=st.none(),
    put_soon_ratio=st.sampled_from([0.0, 0.6, 0.61]), put_next_ratio=st.sampled_from([0.0, 0.29, 0.3]),
    put_first_expiry=st.none(), put_first_dte=st.none(), magnet_above=st.none(),
    magnet_above_strength=maybe(st.sampled_from([50.0, 50.5, 80.0])), magnet_below=st.none(),
    magnet_below_strength=st.none(), magnet_expiry=st.none(), scale=st.sampled_from([0.5, 1.0, 1.01, 8.0]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(signal_inputs, min_size=1, max_size=6))
def test_vectorised_conditions_equal_the_plain_ones(xs):
    hits = sg.pattern_hits(sg.SignalColumns.of(xs))
    first, second = sg.first_two(hits)
    for j, x in enumerate(xs):
        plain = plain_conditions(x)
        assert sg.conditions(x) == plain
        assert dict(zip(sg.PATTERNS, hits[:, j].tolist())) == plain
        fired = [p for p in sg.PATTERNS if plain[p]]
        assert sg.detect(x) == ((fired[0] if fired else None), (fired[1] if len(fired) > 1 else None))
        assert (first[j] == len(sg.PATTERNS)) == (not fired)
        if fired:
            assert sg.PATTERNS[first[j]] == fired[0]
            assert (sg.PATTERNS[second[j]] if second[j] < len(sg.PATTERNS) else None) == (fired[1:2] or [None])[0]


# ---------------------------------------------------------------- whole rows through a synthetic backfill
def reference_rows(ctx: SignalContext, s, snaps, chain, prior, prev_day, close_iv, data_source, chain_source):
    """The per-session path as it was before the batch API: the scalar structure functions, the median
    of the priors, one SignalInputs and signal_row."""
    j = ctx.todo_index[s.date]
    close, pre = snaps[-1], snaps[-2] if len(snaps) > 1 else snaps[-1]
    gs = gamma_structure(chain, close.spot, s.close, ctx.conv.dte_window, ctx.conv.r, ctx.conv.q)
    walls = signal_walls(gs)
    cw, pw = wall_expiry(gs, walls.call_above, "call"), wall_expiry(gs, walls.put_below, "put")
    mag = monthly_magnets(gs)
    prior = np.abs(np.asarray(prior, dtype=float))
    typical = float(np.median(prior)) if prior.size >= MIN_SCALE_SESSIONS else abs(close.net_gex)
    vix, vix_prev, vix_src = ctx._vix(s.date, prev_day, close_iv)
    row = sg.signal_row(sg.SignalInputs(
        symbol=ctx.symbol, spot=close.spot, net_gamma=close.net_gex, flip=close.flip_point,
        rsi={tf: _f(ctx.rsi[tf][j]) for tf in rsi_mod.TIMEFRAMES}, rsi_score=_f(ctx.score[j]),
        overbought=int(ctx.overbought[j]), oversold=int(ctx.oversold[j]), coiling=bool(ctx.coiling[j]),
        volume_ratio=_f(ctx.volume_ratio[j]), vix=vix, vix_previous=vix_prev, vix_source=vix_src,
        gamma_this_week=close.gamma_expiring_this_week, net_gamma_this_week=net_expiring_by(gs, week_end(s.date)),
        gamma_next_week=close.gamma_expiring_next_week, zero_dte_gamma=pre.zero_dte_gamma,
        pin_next_week=pre.gamma_expiring_next_week, call_wall=walls.call_above, call_wall_gamma=walls.call_above_gamma,
        put_wall=walls.put_below, put_wall_gamma=walls.put_below_gamma, call_wall_any=walls.call_nearest,
        put_wall_any=walls.put_nearest, call_soon_ratio=cw.soon_ratio, call_first_expiry=cw.first_expiry,
        call_first_dte=cw.first_dte, put_soon_ratio=pw.soon_ratio, put_next_ratio=pw.next_ratio,
        put_first_expiry=pw.first_expiry, put_first_dte=pw.first_dte, magnet_above=mag.above,
        magnet_above_strength=mag.above_strength, magnet_below=mag.below, magnet_below_strength=mag.below_strength,
        magnet_expiry=mag.expiry, scale=typical / sg.GEX_REFERENCE if typical > 0 else 1.0, session_date=s.date))
    if row is None:
        return []
    row.update({"timestamp": format_ts(s.close), "data_source": data_source, "chain_source": chain_source})
    return [row]


@pytest.fixture(scope="module")
def recorded():
    """The SignalContext and, per session, the rows_for arguments of a synthetic SPY backfill, taken
    from the rows_for_many calls compute_sessions makes (which are not run)."""
    calls = []
    real = SignalContext.rows_for_many

    def record(self, sessions, snaps, chains, close_net_gex, positions, prev_days, close_iv, data_source,
               chain_sources, scale_window=sg.SCALE_WINDOW):
        for j, s in enumerate(sessions):
            p = positions[j]
            prior = [float(v) for v in close_net_gex[max(0, p - scale_window):p]]
            calls.append((self, (s, snaps[j], chains[j], prior, prev_days[j], close_iv, data_source,
                                 chain_sources[j])))
        return [[] for _ in sessions]

    SignalContext.rows_for_many = record
    try:
        end = dt.date(2025, 6, 30)
        todo = sessions_between(end - dt.timedelta(days=420), end)
        for _ in compute_sessions(SyntheticMarket(11), "SPY", todo, Conventions(), ModelParams()):
            pass
    finally:
        SignalContext.rows_for_many = real
    ctx = calls[0][0]
    args = [a for _, a in calls]
    series = list(args[0][3]) + [a[1][-1].net_gex for a in args]
    positions = [len(args[0][3]) + j for j in range(len(args))]
    assert all(list(a[3]) == series[max(0, p - sg.SCALE_WINDOW):p] for a, p in zip(args, positions))
    return ctx, args, np.array(series), positions


def batch_rows(ctx, args, series, positions, cuts):
    out = []
    for a, b in zip(cuts, cuts[1:]):
        part = args[a:b]
        out.extend(ctx.rows_for_many([x[0] for x in part], [x[1] for x in part], [x[2] for x in part], series,
                                     positions[a:b], [x[4] for x in part], part[0][5], part[0][6],
                                     [x[7] for x in part]))
    return out


def test_rows_for_many_equals_the_per_session_reference(recorded):
    ctx, args, series, positions = recorded
    ref = [without_created_at(reference_rows(ctx, *a)) for a in args]
    got = [without_created_at(r) for r in batch_rows(ctx, args, series, positions, list(range(0, len(args), 250)) + [len(args)])]
    assert got == ref
    fired = sum(map(len, ref))
    assert 0.1 * len(args) < fired < len(args)  # signals and NEUTRAL days both occur
    assert len({r[0]["primary_regime_type"] for r in ref if r}) >= 3
    one = [without_created_at(ctx.rows_for(*a)) for a in args[:: max(1, len(args) // 40)]]
    assert one == ref[:: max(1, len(args) // 40)]


@settings(max_examples=6, deadline=None)
@given(st.lists(st.integers(1, 120), min_size=1, max_size=6))
def test_rows_do_not_depend_on_the_batches(recorded, sizes):
    ctx, args, series, positions = recorded
    n = min(len(args), 200)
    cuts = sorted({int(c) for c in np.cumsum(sizes) if c < n} | {0, n})
    whole = batch_rows(ctx, args[:n], series, positions[:n], [0, n])
    split = batch_rows(ctx, args[:n], series, positions[:n], cuts)
    assert [without_created_at(r) for r in split] == [without_created_at(r) for r in whole]
