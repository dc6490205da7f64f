"""A modelled option chain: the chain a day's market would plausibly have had (docs/computation.md).

Deterministic given the daily price path. What it models:
- listed expirations per product and era (monthlies, quarterlies, Friday weeklies, then Monday/
  Wednesday and finally every-day expirations for the index products), each listed a fixed time
  before expiry;
- strikes on a round grid chosen from the price at listing (the step near 0.85% of spot, snapped to
  1/2.5/5/10/25/50/100...), +-50% around the listing price, extended as the index moves: Cboe lists
  new strikes past an expiry's highest (lowest) one as the index nears it ("new series are generally
  added when the underlying trades through the highest or lowest strike price available", its index
  option specifications). Until the close has come within ModelParams.strikes_added_within (12%,
  calibrated) of an edge, the new contracts a session's Gaussian would put past it go to the listed strikes (the
  weights are normalised over the grid, so a Gaussian centred past the edge piles them on its last
  strikes: traders take the farthest strike listed); from then on they go to strikes the fixed grid
  does not hold, and are left out of the chain (_beyond: their weight in closed form);
- open interest that accumulates while an expiry is listed, from each session's option volume,
  where the price is that day: calls above spot (customers overwrite, dealers are long them), puts
  below (customers buy protection, dealers are short them), more on round strikes, decaying as
  positions close, gone at expiry. After a sell-off spot sits in the put mass and far from the
  calls: net GEX turns negative; in a calm rally the puts are left far below and GEX rises.
  Option volume is not an input (index bars have no volume): it is a per-product contract count
  (PRODUCT_CONTRACTS, times ModelParams.flow_scale which sets the level of GEX) scaled by a
  volatility-driven proxy, (realised vol / long-run) ** elasticity;
- implied volatility from 20-session realised volatility with a variance premium, a term structure
  that mean-reverts to the long-run level, and a put skew.

Eras (each from public market facts; a date's chain depends only on the prices up to it and on
the calendar):
- the expiry calendar: SPX Friday Weeklys listed 8 days ahead until May 2012, five weeks ahead since
  (Cboe extended the listings then); Wednesday expiries from March 2016 and Monday expiries from
  August 2016 (Cboe); Tuesday and Thursday expiries, so one every session, from May 2022 (Cboe added
  Tuesdays in April and Thursdays in May 2022; the model switches at 2022-05-11). SPX standard
  monthlies are AM-settled (they stop at the open of the third Friday): the model treats them, like
  every expiry, as live until that day's close (at Thursday's close it gives them 24 hours, not
  17.5, so slightly less gamma, and it keeps them in that Friday's intraday snapshots). Before
  2015-02-20 every product's standard monthlies expired on the Saturday after the third Friday (the
  OCC calendar of the time; OCC moved standard expirations to the Friday from the February 2015
  expiry on): the model keeps them live to the Saturday, so they still count at the third Friday's
  close (expiry_moments; the published GEX stays up on those Fridays until January 2015 and drops on
  them from 2015-02-20);
- the short-dated share of the flow: the DTE e-folding of new contracts is shorter once the product
  has mid-week expiries (dte_decay_days_midweek, fitted), and from May 2022 the daily expiries take
  their share (KIND_WEIGHT['daily']); same-day (0DTE) volume, about half of SPX volume by 2023,
  mostly opens and closes within the session and so adds little open interest: the model adds no
  separate 0DTE flow;
- tried and left out (benchmarks/calibrate_chain_model.py says why): overwriting blocks at the
  monthly roll, and contract counts growing with Cboe's yearly SPX volume.

Because every expiry's OI starts from zero at its listing date, the chain of a date depends only on
prices since the oldest live listing (at most LISTING_DAYS['monthly'] before), not on the window a
run asked for.

The model reads no calendar itself: its caller passes the sessions (dates and closes) of
sessions_span(dates), the span in which the path's expiries fall.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.implied import norm_cdf
from gexhistory.engine.params import ModelParams
from gexhistory.engine.surface import atm_level_at_close, sd_per_log, skewed, term_level
from gexhistory.engine.surface import realised_vol as _realised_vol

if TYPE_CHECKING:
    from gexhistory.calendar import Session

# Era rules (first expiry of each kind) for the products that have them. Friday weeklies: SPX from
# October 2005 (Cboe's first Weeklys); SPY, QQQ, DIA and IWM from Cboe's ETF Weeklys, first listed
# Friday 2010-06-04 and so first expiring 2010-06-11.
WEEKLY_FRIDAYS_FROM = {"SPY": dt.date(2010, 6, 11), "QQQ": dt.date(2010, 6, 11), "IWM": dt.date(2010, 6, 11),
                       "SPX": dt.date(2005, 10, 28), "I:SPX": dt.date(2005, 10, 28), "DIA": dt.date(2010, 6, 11)}
# First expiry of the mid-week weeklies: SPX Wednesdays were first listed 2016-02-23 (first expiry
# 2016-03-02) and Mondays 2016-08-15 (first expiry 2016-08-22), per Cboe; SPY Wednesdays were listed
# from 2016-09-07 and SPY Mondays from 2018-02-16. QQQ and IWM got both later (2018, approximate).
WEDNESDAY_FROM = {"SPX": dt.date(2016, 3, 2), "I:SPX": dt.date(2016, 3, 2), "SPY": dt.date(2016, 9, 14),
                  "QQQ": dt.date(2018, 8, 29), "IWM": dt.date(2018, 8, 29)}
MONDAY_FROM = {"SPX": dt.date(2016, 8, 22), "I:SPX": dt.date(2016, 8, 22), "SPY": dt.date(2018, 2, 26),
               "QQQ": dt.date(2018, 8, 27), "IWM": dt.date(2018, 8, 27)}
# Every weekday: SPX got Tuesdays and Thursdays in April-May 2022, SPY and QQQ in November 2022.
EVERY_DAY_FROM = {"SPY": dt.date(2022, 11, 14), "QQQ": dt.date(2022, 11, 14), "SPX": dt.date(2022, 5, 11),
                  "I:SPX": dt.date(2022, 5, 11), "IWM": dt.date(2023, 1, 2)}
QUARTERLIES = {"SPY", "QQQ", "IWM", "SPX", "I:SPX", "DIA"}
WEEKLIES_FOR_LARGE_CAPS_FROM = dt.date(2013, 1, 4)
LARGE_CAPS = {"AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "GOOGL", "GOOG", "NFLX", "AMD"}

# Option contracts traded per session, order of magnitude for 2011-2019 (OCC/Cboe annual volumes
# divided by ~252 sessions); only the GEX scale depends on them, never its sign or ranks.
PRODUCT_CONTRACTS = {"SPX": 900_000.0, "I:SPX": 900_000.0, "SPY": 2_500_000.0, "QQQ": 700_000.0,
                     "IWM": 800_000.0, "DIA": 60_000.0}
DEFAULT_CONTRACTS = 150_000.0
CALIBRATED_UNTIL = dt.date(2022, 12, 31)  # ModelParams were fitted on the reference up to this date
# Until OCC moved standard expirations to the Friday (from the February 2015 expiry, 2015-02-20, on),
# a standard monthly's expiration date was the Saturday after its third Friday: trading ended on the
# Friday (SPX's AM-settled ones at Thursday's close), but the contracts still existed, and counted, until
# the Saturday. The reference GEX shows it: it stays up on monthly-expiry Fridays until January 2015 and
# drops on them from 2015-02-20. The first monthly that expires on its Friday:
FRIDAY_MONTHLIES_FROM = dt.date(2015, 2, 20)

LISTING_DAYS = {"monthly": 370, "quarterly": 370, "weekly": 36, "daily": 15}
# SPX Weeklys: listed 8 days ahead (Thursday for the next week's Friday) until Cboe began, in May 2012,
# to keep five consecutive weeks listed; the first weekly expiry listed the new way is taken as 2012-06-01.
WEEKLY_LISTING_EXTENDED = {"SPX": dt.date(2012, 6, 1), "I:SPX": dt.date(2012, 6, 1)}
WEEKLY_LISTING_BEFORE = 8
# Share of the flow per expiry kind, relative to a weekly; the monthlies' is ModelParams.monthly_weight.
KIND_WEIGHT = {"quarterly": 2.6, "weekly": 1.0, "daily": 0.7}
KINDS = ("monthly", "quarterly", "weekly", "daily")  # expiry_kinds codes
STRIKE_SPAN = 0.5
MIN_OI_SHARE = 0.005
NICE_STEPS = np.array([0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0])
BLOCK_SESSIONS = 16  # sessions of option flow weighed per vectorised pass (work arrays stay near L2 size)
CHAIN_BATCH = 128  # chains cut out per pass (bounds the OI snapshot buffer)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def strike_step(price: float, fraction: float) -> float:
    return float(_nice_steps(np.array([price * fraction]))[0])


def _nice_steps(target: np.ndarray) -> np.ndarray:
    """The NICE_STEPS value nearest each target step in ratio."""
    return NICE_STEPS[np.argmin(np.abs(np.log(NICE_STEPS / target[:, None])), axis=1)]


@dataclass
class _Expiry:
    date: dt.date
    close_ts: float
    kind: str
    listed: dt.date


def kind_weights(p: ModelParams) -> np.ndarray:
    """The flow weight of each kind of KINDS (KIND_WEIGHT, and the monthlies' from the parameters)."""
    return np.array([p.monthly_weight if k == "monthly" else KIND_WEIGHT[k] for k in KINDS])


def list_expiries(symbol: str, sessions: list[Session]) -> list[_Expiry]:
    """Every expiration of `symbol` that falls on one of `sessions`, with its kind and listing date."""
    days = _days([s.date for s in sessions])
    kind = expiry_kinds(symbol, days)
    ahead = listing_days(symbol, days, kind)
    ends = expiry_moments(days, kind, np.array([s.close.timestamp() for s in sessions]))
    return [_Expiry(sessions[k].date, float(ends[k]), KINDS[kind[k]],
                    sessions[k].date - dt.timedelta(days=int(ahead[k])))
            for k in np.flatnonzero(kind >= 0).tolist()]


def expiry_moments(days: np.ndarray, kind: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """POSIX seconds at which each expiry (its last session `days`, kind from expiry_kinds, that
    session's close `closes`) stops counting: the session's close, except a standard monthly before
    FRIDAY_MONTHLIES_FROM, which lives to the same time on the Saturday after (two days after a
    Thursday that a Good Friday moved it to). Its date stays the last session, as the rest of the
    engine recognises monthlies by it (structure.is_monthly_expiry)."""
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    saturday = (kind == KINDS.index("monthly")) & (days < np.datetime64(FRIDAY_MONTHLIES_FROM, "D"))
    # Saturdays after a third Friday are never DST switch days (Sundays), so a day is 86,400 s
    return closes + np.where(saturday, (5 - weekday) * 86_400.0, 0.0)


def listing_days(symbol: str, days: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """How many calendar days before its expiry each expiry (kind from expiry_kinds) is listed.

    LISTING_DAYS by kind, except the SPX Weeklys that expired before WEEKLY_LISTING_EXTENDED: until
    May 2012 Cboe listed each one on the Thursday before the Friday of the following week (8 days),
    and only then began to keep five consecutive weeks listed (36 days).
    """
    ahead = np.array([LISTING_DAYS[k] for k in KINDS] + [0])[kind]
    extended = WEEKLY_LISTING_EXTENDED.get(symbol)
    if extended is not None:
        ahead = np.where((kind == KINDS.index("weekly")) & (days < np.datetime64(extended, "D")),
                         WEEKLY_LISTING_BEFORE, ahead)
    return ahead


def expiry_kinds(symbol: str, days: np.ndarray) -> np.ndarray:
    """For ascending session dates (datetime64[D]), the index in KINDS of what `symbol` has expiring
    on each, or -1 for no expiry.

    Monthlies on the third Friday (a holiday moves them to the session before), quarterlies on the
    last session of March/June/September/December, Friday weeklies, Wednesday and Monday weeklies
    (a holiday moves a Wednesday to the session before, a Monday to the session after, within the
    same week), then every session, each from its era's first expiry; a date takes the first kind
    of that list that applies.
    """
    base = symbol.split(":")[-1]
    none = np.zeros(days.size, dtype=bool)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    week = days.astype(np.int64) - weekday  # Monday of the session's week
    month = days.astype("datetime64[M]")
    first_of_month = month.astype("datetime64[D]").astype(np.int64)
    third_friday = first_of_month + (4 - (first_of_month + 3) % 7) % 7 + 14
    monthly = _last_in_group(month, days.astype(np.int64) <= third_friday)
    quarter_end = np.isin(month.astype(np.int64) % 12, (2, 5, 8, 11))
    quarterly = (_last_in_group(month, ~none) & quarter_end) if (symbol in QUARTERLIES or base in QUARTERLIES) else none

    def since(first: dt.date | None, picked: np.ndarray) -> np.ndarray:
        return picked & (days >= np.datetime64(first, "D")) if first else none

    weekly_from = WEEKLY_FRIDAYS_FROM.get(symbol) or (WEEKLIES_FOR_LARGE_CAPS_FROM if base in LARGE_CAPS else None)
    weekly = since(weekly_from, _last_in_group(week, weekday <= 4))
    every_day = since(EVERY_DAY_FROM.get(symbol), ~none)
    mid_week = (since(WEDNESDAY_FROM.get(symbol), _last_in_group(week, weekday <= 2))
                | since(MONDAY_FROM.get(symbol), _last_in_group(week[::-1], ~none)[::-1]))
    return np.select([monthly, quarterly, weekly, every_day, mid_week], [0, 1, 2, 3, 3], -1)


def _last_in_group(key: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Marks, in each run of equal `key`, the last element where `mask` holds."""
    at = np.flatnonzero(mask)
    k = key[at]
    out = np.zeros(key.size, dtype=bool)
    out[at[np.r_[k[1:] != k[:-1], True]]] = True
    return out


def _days(dates: list[dt.date]) -> np.ndarray:
    """datetime64[D] of dates (via ordinals: numpy converts date objects one slow call at a time)."""
    return (np.array([d.toordinal() for d in dates], dtype=np.int64) - _EPOCH_ORDINAL).astype("datetime64[D]")


class ChainModel:
    """The modelled chain of each session of a daily price path (chains_for, chain_for).

    The open interest of every listed expiry is stepped session by session, exactly
    oi = oi * (1 - oi_turnover) + that session's new contracts. Expiries share lanes, the rows of
    one (lane, strike, call/put) array, a lane being reused once its expiry has rolled off, so a
    step is two in-place operations whatever the number of expiries. The new contracts of many
    sessions are weighed in one vectorised pass (_weigh), and chains are cut out of snapshots of
    the state in batches (_cut). Every number of a session comes from element-wise operations and
    per-row sums over that session's own values, so a chain is the same to the last bit whichever
    other chains are computed with it and wherever the price path starts (see the module docstring).
    """

    def __init__(self, symbol: str, dates: list[dt.date], close: np.ndarray, volume: np.ndarray | None = None,
                 params: ModelParams | None = None, *, sessions: Sequence[Session]):
        """`sessions`: the sessions of sessions_span(dates), each with its date and close (more are ignored)."""
        self.symbol = symbol
        self.params = p = params or ModelParams()
        self.dates = list(dates)
        self.close = np.asarray(close, dtype=float)
        # Share volume is accepted for the callers' convenience but not used: index bars (SPX) have
        # none, and the option flow is modelled from the price path alone (see _option_flow).
        rv = _realised_vol(self.close)
        flow = _option_flow(symbol, rv, p)
        self._call_flow = flow / (1 + p.put_call_volume * _vol_level(rv, p) ** p.put_call_vol_elasticity)
        self._put_flow = flow - self._call_flow
        # ATM implied vol known at the close of each session (so at the next open)
        self._iv_close = atm_level_at_close(self.close, p, rv)
        self._log_close = np.log(self.close)
        # every expiry from the first date to beyond the last listing the path can see
        first, last = sessions_span(self.dates)
        sessions = [s for s in sessions if first <= s.date <= last]
        days = _days([s.date for s in sessions])
        kind = expiry_kinds(symbol, days)
        at = np.flatnonzero(kind >= 0)
        kind = kind[at]
        self._day = _days(self.dates)
        self._exp_dates = days[at]  # ascending
        closes = np.array([sessions[k].close.timestamp() for k in at.tolist()])
        self._exp_close = expiry_moments(self._exp_dates, kind, closes)
        self._kind_w = kind_weights(p)[kind]
        # each expiry is listed and unexpired on sessions first..last of the path (none if first > last)
        listed = self._exp_dates - listing_days(symbol, self._exp_dates, kind).astype("timedelta64[D]")
        # The e-folding in DTE of the new contracts on each session: dte_decay_days until the product's
        # first mid-week expiry (SPX 2016-03-02), dte_decay_days_midweek from then on (_pairs).
        midweek = WEDNESDAY_FROM.get(symbol)
        self._decay = np.where(self._day_of(midweek), p.dte_decay_days_midweek, p.dte_decay_days)
        self._first = np.searchsorted(self._day, listed)
        self._last = np.searchsorted(self._day, self._exp_dates, side="right") - 1
        n_k = int(2 * STRIKE_SPAN / p.step_fraction) + 3
        self._strikes, self._log_k, self._boost = _strike_grids(self.close, self._first, p, n_k)
        self._edges = _grid_edges(self._strikes)
        self._next = None  # lowest chain index servable without restarting the state (None: no state)
        self._ahead: dict[int, OptionChain] = {}  # chains chain_for computed ahead of being asked

    def _day_of(self, first: dt.date | None) -> np.ndarray:
        """Per session of the path: whether it is on or after `first` (never when first is None)."""
        return self._day >= np.datetime64(first, "D") if first else np.zeros(self._day.size, dtype=bool)

    def iv_level(self, i: int) -> float:
        """ATM implied vol of session i as known at its open (from realised vol to the prior close)."""
        return float(self._iv_close[max(i - 1, 0)])

    def chain_for(self, i: int) -> OptionChain:
        """The chain of session i (see chains_for). Callers mostly step through sessions one by one,
        so the following sessions' chains are computed with it, CHAIN_BATCH in all, and kept."""
        if i not in self._ahead:
            if not 0 <= i < len(self.dates):
                raise ValueError(f"session index {i} is not within 0..{len(self.dates) - 1}")
            ahead = range(i, min(i + CHAIN_BATCH, len(self.dates)))
            self._ahead = dict(zip(ahead, self.chains_for(ahead)))
        return self._ahead[i]

    def chains_for(self, indices) -> list[OptionChain]:
        """The chains of sessions `indices` (ascending), as known on the morning of each session:
        OI accumulated through the session before, expiries up to params.dte_window days out.

        Contracts are ordered by expiry_close ascending, then strike ascending, then the call
        before the put of the same (expiry, strike); a (strike, right) holding less than
        MIN_OI_SHARE of the chain's largest OI is left out. A chain is the same to the last bit
        whichever indices are asked with it. Asking for indices at or after the last one asked
        continues the model's state; an earlier one restarts it (same chains, more work). Chains
        computed together share their arrays (each holds slices): treat them as read-only.
        """
        return list(self.iter_chains(indices))

    def iter_chains(self, indices) -> Iterator[OptionChain]:
        """chains_for(indices) one chain at a time, computed CHAIN_BATCH at a time (bounded memory)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and ((np.diff(idx) < 0).any() or idx[0] < 0 or idx[-1] >= len(self.dates)):
            raise ValueError(f"session indices must ascend within 0..{len(self.dates) - 1}")
        return (chain for at in range(0, idx.size, CHAIN_BATCH) for chain in self._batch(idx[at:at + CHAIN_BATCH]))

    def _start(self, first_chain: int) -> None:
        """Empty state for chains from session `first_chain` on. Expiries that roll off before it (or
        lie beyond every chain of the path) get no lane: no chain shows them, but they still take
        their share of each session's contracts (_pairs counts every live expiry)."""
        p = self.params
        horizon = self._day[-1] + np.timedelta64(p.dte_window, "D")
        tracked = ((self._exp_dates >= self._day[first_chain]) & (self._exp_dates <= horizon)
                   & (self._first <= self._last))
        lane, n_lanes, self._resets = _lanes(self._first, self._last, tracked)
        n_k = self._strikes.shape[1]
        self._i = int(self._first[tracked].min(initial=len(self.dates))) - 1  # last session stepped
        self._pairs(self._i + 1, lane)
        self._lane = lane
        # [lane, strike, 0] calls and [lane, strike, 1] puts: a chain's contracts in their final order
        self._oi = np.zeros((n_lanes, n_k, 2))
        self._add = np.zeros((BLOCK_SESSIONS, n_lanes, n_k, 2))
        self._add_from = self._add_to = 0
        # a block's pairs fill distinct (session, lane) cells: BLOCK_SESSIONS * n_lanes at most
        self._work = np.empty((3, BLOCK_SESSIONS * n_lanes, n_k))  # gathered log-strikes, boosts, weights
        self._pair_add = np.empty((BLOCK_SESSIONS * n_lanes, n_k, 2))

    def _pairs(self, start: int, lane: np.ndarray) -> None:
        """Per (session, tracked live expiry) pair from session `start` on, by session then expiry:
        the Gaussian's centre and curvature in log-strike and the contracts to spread, per side."""
        p = self.params
        sess = np.arange(start, len(self.dates))
        lo = np.searchsorted(self._last, sess)  # first expiry not rolled off (last ascends with the date)
        hi = np.searchsorted(self._exp_dates, self._day[sess] + np.timedelta64(max(LISTING_DAYS.values()), "D"),
                             side="right")
        n = np.maximum(hi - lo, 0)
        i = np.repeat(sess, n)
        e = np.arange(i.size) + np.repeat(lo - (np.cumsum(n) - n), n)
        live = self._first[e] <= i
        i, e = i[live], e[live]
        dte = (self._exp_dates[e] - self._day[i]).astype(float)
        share = self._kind_w[e] * np.exp(-dte / self._decay[i])
        starts = np.flatnonzero(np.diff(i, prepend=-1))
        share /= np.repeat(np.add.reduceat(share, starts), np.diff(starts, append=i.size))
        mine = lane[e] >= 0
        i, e, dte, share = i[mine], e[mine], dte[mine], share[mine]
        sd = self._iv_close[i] * np.sqrt(np.maximum(dte, 1.0) / 365.0)
        self._pair_i, self._pair_e, self._pair_lane = i, e, lane[e]
        # curvature in base 2: the weights are exp2((log k - centre)^2 * curvature); exp2 is ~7% cheaper
        # than exp, and the 1.7e7 weights of a 10-year SPY run are most of the model's cost
        # Past an edge that has been extended (_extended), a Gaussian's new contracts go to strikes the
        # grid does not hold: their weight (_beyond) joins the sum the grid's weights are divided by.
        extended = _extended(self._log_close[i], e, self._edges, p.strikes_added_within)
        self._pair_side = []
        for center, width, flow in ((p.call_center_sd, p.call_width_sd, self._call_flow),
                                    (p.put_center_sd, p.put_width_sd, self._put_flow)):
            c, s = self._log_close[i] + center * sd, width * sd + 0.005
            self._pair_side.append((c, -0.5 * np.log2(np.e) / s ** 2, flow[i] * share,
                                    _beyond(self._edges[e], c, s, extended, p.round_strike_boost)))
        self._pair_from = start  # the pairs of session t are [_pair_at[t - start], _pair_at[t - start + 1])
        self._pair_at = np.searchsorted(i, np.arange(start, len(self.dates) + 1))

    def _step_through(self, i: int) -> None:
        """Accumulate OI through the end of session i (OI published the next morning)."""
        keep = 1.0 - self.params.oi_turnover
        oi, resets = self._oi, self._resets
        while self._i < i:
            t = self._i + 1
            if t >= self._add_to:
                self._weigh(t)
            lanes = resets.get(t)
            if lanes is not None:
                oi[lanes] = 0.0
            oi *= keep
            oi += self._add[t - self._add_from]
            self._i = t

    def _weigh(self, a: int) -> None:
        """The contracts each session of a..a+BLOCK_SESSIONS-1 adds to each tracked expiry's strikes,
        laid out per (session, lane, strike, call/put) for _step_through.

        A session's option flow is split over its live expiries by kind weight and an exponential
        decay in DTE (_pairs), then over each expiry's strikes by a Gaussian in log-moneyness (calls
        centred above spot, puts below, width growing with sigma*sqrt(T)), boosted on round strikes.
        """
        b = min(a + BLOCK_SESSIONS, len(self.dates))
        p0, p1 = self._pair_at[a - self._pair_from], self._pair_at[b - self._pair_from]
        e = self._pair_e[p0:p1]
        log_k, boost, w = (buf[:e.size] for buf in self._work)
        np.take(self._log_k, e, axis=0, out=log_k, mode="clip")  # e is in range; "raise" would buffer
        np.take(self._boost, e, axis=0, out=boost, mode="clip")
        pair_add = self._pair_add[:e.size]
        for side, (center, curvature, contracts, beyond) in enumerate(self._pair_side):
            np.subtract(log_k, center[p0:p1, None], out=w)
            w *= w
            w *= curvature[p0:p1, None]
            np.exp2(w, out=w)
            w *= boost
            total = w.sum(axis=1)
            total += beyond[p0:p1]
            np.multiply(w, (contracts[p0:p1] / np.maximum(total, 1e-12))[:, None], out=pair_add[:, :, side])
        # Cells of lanes that hold no live expiry keep stale values: such a lane is never shown and
        # is emptied before its next expiry's first step, so it need not be cleared here.
        add = self._add
        add.reshape(-1, *add.shape[2:])[(self._pair_i[p0:p1] - a) * add.shape[1] + self._pair_lane[p0:p1]] = pair_add
        self._add_from, self._add_to = a, b

    def _batch(self, idx: np.ndarray) -> list[OptionChain]:
        """Step through the sessions before each of `idx` and snapshot the lanes its chain shows."""
        if self._next is None or idx[0] < self._next:
            self._start(int(idx[0]))
        self._next = int(idx[-1])
        day = self._day[idx]
        lo = np.searchsorted(self._exp_dates, day)
        n = np.searchsorted(self._exp_dates, day + np.timedelta64(self.params.dte_window, "D"), side="right") - lo
        chain = np.repeat(np.arange(idx.size), n)
        exp = np.arange(chain.size) + np.repeat(lo - (np.cumsum(n) - n), n)
        shown = self._first[exp] < idx[chain]  # listed by the session before: its grid exists
        # (so it is live on that session and expires on or after the pass's first chain: it has a lane)
        chain, exp = chain[shown], exp[shown]
        snap = np.empty((exp.size,) + self._oi.shape[1:])
        lanes = self._lane[exp]
        bounds = np.searchsorted(chain, np.arange(idx.size + 1)).tolist()
        for c, i in enumerate(idx.tolist()):
            r0, r1 = bounds[c], bounds[c + 1]
            if r1 > r0:
                self._step_through(i - 1)
                np.take(self._oi, lanes[r0:r1], axis=0, out=snap[r0:r1], mode="clip")
        return self._cut(idx, chain, exp, snap)

    def _cut(self, idx: np.ndarray, chain: np.ndarray, exp: np.ndarray, snap: np.ndarray) -> list[OptionChain]:
        """OptionChains from OI snapshots: snap[r] holds expiry exp[r] of chain idx[chain[r]], per
        (strike, call/put), so the kept cells in memory order are the contracts in chain order."""
        p = self.params
        n_k = snap.shape[1]
        oi = np.round(snap, out=snap)
        top = np.zeros(idx.size)
        rows = np.bincount(chain, minlength=idx.size)
        has = rows > 0
        if has.any():
            top[has] = np.maximum.reduceat(oi.reshape(exp.size, 2 * n_k).max(axis=1), (np.cumsum(rows) - rows)[has])
        # Far wings hold a few contracts with no measurable gamma; dropping those under MIN_OI_SHARE
        # of the chain's largest line keeps chains small (exposure cost is per contract). Cells
        # without a strike hold no OI, so the floor (at least 1 contract) drops them too.
        kept = oi >= np.maximum(MIN_OI_SHARE * top, 1.0)[chain, None, None]
        flat = np.flatnonzero(kept)
        per_row = np.diff(np.searchsorted(flat, np.arange(exp.size + 1) * (2 * n_k)))
        cell = flat >> 1  # row * n_k + strike
        # IV per (row, strike): the term structure from the session's ATM level, then the skew
        prior = np.maximum(idx - 1, 0)[chain]
        dte = (self._exp_dates[exp] - self._day[idx[chain]]).astype(float)
        term = term_level(p, self._iv_close[prior], dte)
        m = np.take(self._log_k, exp, axis=0, mode="clip")  # moneyness in sd units: (log k - log spot) / sd
        m -= self._log_close[prior][:, None]
        m *= sd_per_log(term, dte)[:, None]
        iv = skewed(p, term[:, None], m)
        expiry, close, strike = (np.repeat(self._exp_dates[exp], per_row), np.repeat(self._exp_close[exp], per_row),
                                 self._strikes[exp].ravel()[cell])
        is_call, oi, iv = (flat & 1) == 0, oi.ravel()[flat], iv.ravel()[cell]
        ends = np.r_[0, np.cumsum(per_row)][np.searchsorted(chain, np.arange(1, idx.size + 1))].tolist()
        return [OptionChain(self.symbol, self.dates[i], expiry[a:b], close[a:b], strike[a:b], is_call[a:b],
                            oi[a:b], iv[a:b], "modelled")
                for i, a, b in zip(idx.tolist(), [0, *ends[:-1]], ends)]


def _strike_grids(close: np.ndarray, first: np.ndarray, p: ModelParams, n_k: int):
    """Per expiry: its strikes (a grid around the close of its first live session, NaN where not
    positive or never live), their logs (0 where no strike), and the OI multiplier of each strike:
    round_strike_boost on multiples of twice the step, 1 elsewhere, 0 where there is no strike."""
    strikes = np.full((first.size, n_k), np.nan)
    boost = np.zeros((first.size, n_k))
    drawn = first < close.size
    if drawn.any():
        price = close[first[drawn]][:, None]
        step = _nice_steps(price[:, 0] * p.step_fraction)[:, None]
        grid = np.round(price / step) * step + step * (np.arange(n_k) - n_k // 2)
        k = np.where(grid > 0, grid, np.nan)
        strikes[drawn] = k
        unit = 2 * np.nanmin(np.diff(k, axis=1), axis=1)[:, None]
        round_k = np.isclose(np.mod(k, unit), 0) | np.isclose(np.mod(k, unit), unit)
        boost[drawn] = np.where(round_k, p.round_strike_boost, 1.0)
    valid = np.isfinite(strikes)
    boost[~valid] = 0.0
    return strikes, np.log(np.where(valid, strikes, 1.0)), boost


def _grid_edges(strikes: np.ndarray) -> np.ndarray:
    """Per expiry: the logs of its lowest and highest strikes and its step (NaN where it has no grid)."""
    out = np.full((strikes.shape[0], 3), np.nan)
    has = np.isfinite(strikes).any(axis=1)
    k = strikes[has]
    out[has, 0], out[has, 1] = np.log(np.nanmin(k, axis=1)), np.log(np.nanmax(k, axis=1))
    out[has, 2] = np.nanmin(np.diff(k, axis=1), axis=1)
    return out


def _extended(log_close: np.ndarray, e: np.ndarray, edges: np.ndarray, within: float) -> np.ndarray:
    """Per (session, expiry) pair, ordered by session (log_close: the session's, e: the expiry's
    index): [low edge extended, high edge extended], shape (2, pairs). An edge is extended from the
    first session on which the close came within `within` (in log) of it, or past it, and stays so
    (strikes once listed stay listed); never when `within` is negative. Every pair of an expiry
    from its first live session on is present (_pairs' order), so its first crossing is among them."""
    out = np.zeros((2, e.size), dtype=bool)
    if within < 0 or not e.size:
        return out
    near = np.stack([log_close < edges[e, 0] + within, log_close > edges[e, 1] - within])
    order = np.argsort(e, kind="stable")  # by expiry, then session
    starts = np.flatnonzero(np.r_[True, e[order][1:] != e[order][:-1]])
    for side in range(2):
        seen = np.cumsum(near[side, order])  # crossings so far, in integers: exact whatever the run
        before = np.repeat(seen[starts] - near[side, order][starts], np.diff(np.r_[starts, e.size]))
        out[side, order] = seen - before > 0
    return out


def _beyond(edges: np.ndarray, c: np.ndarray, s: np.ndarray, extended: np.ndarray, boost: float) -> np.ndarray:
    """The weight that strikes past each extended edge would take from Gaussians in log-strike (centres
    c, sds s) over the grids of `edges` (_grid_edges rows): in _weigh's units (a strike's Gaussian
    value times its boost), the sum over strikes a step apart is the integral of g(log K) dK / step
    at the mean boost, (1 + boost) / 2 (round strikes are every other one). In closed form:
    sqrt(2 pi) s exp(c + s^2 / 2) times the normal tail past (log K_edge - c - s^2) / s, with
    K_edge half a step past the edge strike."""
    lo, hi, step = np.exp(edges[:, 0]), np.exp(edges[:, 1]), edges[:, 2]
    scale = (1.0 + boost) / 2 / step * math.sqrt(2 * math.pi) * s * np.exp(c + s * s / 2)
    up = np.where(extended[1], norm_cdf((c + s * s - np.log(hi + step / 2)) / s), 0.0)
    down = np.where(extended[0], norm_cdf((np.log(np.maximum(lo - step / 2, step / 2)) - c - s * s) / s), 0.0)
    return np.nan_to_num(scale * (up + down))


def _lanes(first: np.ndarray, last: np.ndarray, tracked: np.ndarray) -> tuple[np.ndarray, int, dict]:
    """A lane per tracked expiry (-1 for the others), reusing the lane of an expiry that rolled off
    before this one was listed. Returns the lanes, their number, and {session: lanes to empty
    before that session's step}."""
    lane = np.full(first.size, -1)
    free: list[int] = []
    busy: list[tuple[int, int]] = []  # (last live session, lane)
    resets: dict[int, list[int]] = {}
    n_lanes = 0
    order = np.flatnonzero(tracked)
    order = order[np.argsort(first[order], kind="stable")]
    for e, f, end in zip(order.tolist(), first[order].tolist(), last[order].tolist()):
        while busy and busy[0][0] < f:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            k = heapq.heappop(free)
            resets.setdefault(f, []).append(k)
        else:
            k, n_lanes = n_lanes, n_lanes + 1
        lane[e] = k
        heapq.heappush(busy, (end, k))
    return lane, n_lanes, {t: np.array(v) for t, v in resets.items()}


def _option_flow(symbol: str, rv: np.ndarray, p: ModelParams) -> np.ndarray:
    base = PRODUCT_CONTRACTS.get(symbol, PRODUCT_CONTRACTS.get(symbol.split(":")[-1], DEFAULT_CONTRACTS))
    return base * p.flow_scale * _vol_level(rv, p) ** p.activity_elasticity


def _vol_level(rv: np.ndarray, p: ModelParams) -> np.ndarray:
    """Realised vol relative to the long-run level (the long-run level where rv is unknown), in 0.25..4."""
    return np.clip(np.where(np.isfinite(rv), rv, p.iv_long_run) / p.iv_long_run, 0.25, 4.0)


def sessions_span(dates: Sequence[dt.date]) -> tuple[dt.date, dt.date]:
    """(first, last): the calendar span whose sessions ChainModel needs for a price path over `dates`,
    from the path's first date to beyond the last listing the path can see."""
    return dates[0], dates[-1] + dt.timedelta(days=LISTING_DAYS["monthly"] + 5)


def warmup_start(first_session: dt.date) -> dt.date:
    """How far back prices are needed so every expiry live on `first_session` has its whole history."""
    return first_session - dt.timedelta(days=LISTING_DAYS["monthly"] + 40)
