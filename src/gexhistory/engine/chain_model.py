"""A modelled option chain: the chain a day's market would plausibly have had (SPEC §4.2).

Deterministic given the daily price path. What it models:
- listed expirations per product and era (monthlies, quarterlies, Friday weeklies, then Monday/
  Wednesday and finally every-day expirations for the index products), each listed a fixed time
  before expiry;
- strikes on a round grid chosen from the price at listing (the step near 0.85% of spot, snapped to
  1/2.5/5/10/25/50/100...), +-50% around the listing price;
- open interest that accumulates while an expiry is listed, from each session's option volume,
  where the price is that day: calls above spot (customers overwrite, dealers are long them), puts
  below (customers buy protection, dealers are short them), more on round strikes, decaying as
  positions close, gone at expiry. After a sell-off spot sits in the put mass and far from the
  calls: net GEX turns negative; in a calm rally the puts are left far below and GEX rises.
  Option volume is not an input (index bars have no volume): it is a per-product contract count
  (PRODUCT_CONTRACTS) scaled by a volatility-driven proxy, (realised vol / long-run) ** elasticity;
- implied volatility from 20-session realised volatility with a variance premium, a term structure
  that mean-reverts to the long-run level, and a put skew.

Because every expiry's OI starts from zero at its listing date, the chain of a date depends only on
prices since the oldest live listing (at most LISTING_DAYS['monthly'] before), not on the window a
run asked for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np

from gexhistory.calendar import Session, sessions_between
from gexhistory.engine.chain import OptionChain

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
CALIBRATED_UNTIL = dt.date(2014, 12, 31)  # ModelParams were fitted on the reference up to this date

LISTING_DAYS = {"monthly": 370, "quarterly": 370, "weekly": 36, "daily": 15}
KIND_WEIGHT = {"monthly": 2.2, "quarterly": 2.6, "weekly": 1.0, "daily": 0.7}
STRIKE_SPAN = 0.5
MIN_OI_SHARE = 0.005
NICE_STEPS = np.array([0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0])


@dataclass(frozen=True)
class ModelParams:
    """Free parameters of the chain model; recorded with every run (backfill_runs.parameters).

    The ten marked [fitted] were calibrated by benchmarks/calibrate_chain_model.py on the reference
    GEX series (SqueezeMetrics, SPX) from 2011-05 to CALIBRATED_UNTIL only; 2015-2018 were never
    seen by the search (logs: benchmarks/results/calibration_stage*.log). `gexhistory validate`
    reports the fit on those held-out years. The others are set from market facts, not fitted.
    What each fitted value says about dealer positioning, and why it is plausible:
    """

    step_fraction: float = 0.0085  # strike step ~0.85% of spot: SPX 25-pt at 2000-3000, SPY $1-2.5
    # [fitted] 3.4% of OI closes each session: positions are mostly held for weeks (index option OI
    # turns over slowly); OI therefore remembers where the price was while each expiry was listed.
    oi_turnover: float = 0.0336
    # [fitted] option volume ~ (realised vol / 18%) ** 0.37: more contracts trade in turbulent
    # markets, less than proportionally (hedges are rolled, not multiplied).
    activity_elasticity: float = 0.3656
    # [fitted] new volume spreads over expiries with an e-folding of ~100 days, weighted by kind:
    # monthlies and quarterlies (institutional hedges) hold most OI, not just the front weeklies.
    dte_decay_days: float = 101.91
    # [fitted] dealer-facing put flow per call contract. Gross SPX put/call volume is ~1.5-2, but
    # customers also sell puts (put-writes, collars' short legs): the net that dealers are short is
    # smaller, about 0.8 of the calls customers overwrite.
    put_call_volume: float = 0.8183
    # [fitted] calls are written ~0.67 sigma*sqrt(T) above spot (overwriting), puts bought ~0.5
    # below (protection), both spread widely (1.5-1.6 sigma): OI builds wherever price traded.
    call_center_sd: float = 0.6718
    put_center_sd: float = -0.512
    call_width_sd: float = 1.5
    put_width_sd: float = 1.6182
    round_strike_boost: float = 1.6  # multiples of twice the step (SPX 50s, SPY 5s) draw 1.6x the OI
    # [fitted] ATM implied vol = 1.39 x 20-session realised vol: index implied vol usually exceeds
    # realised by about a third (the variance risk premium), more after a quiet month.
    iv_premium: float = 1.3929
    iv_long_run: float = 0.18  # long-run S&P implied vol level the term structure reverts to
    iv_term_days: float = 60.0  # half-way to the long-run level by ~40 days
    # [fitted] IV falls by 5.7% of ATM vol per standardised unit of moneyness (put skew), plus a
    # small smile curvature; steeper skews did not fit the in-sample years better.
    skew_slope: float = -0.0572
    skew_curve: float = 0.02
    dte_window: int = 60  # the chain holds expiries up to 60 calendar days (as Conventions.dte_window)

    def as_dict(self) -> dict:
        return asdict(self)


def strike_step(price: float, fraction: float) -> float:
    target = price * fraction
    return float(NICE_STEPS[np.argmin(np.abs(np.log(NICE_STEPS / target)))])


@dataclass
class _Expiry:
    date: dt.date
    close_ts: float
    kind: str
    listed: dt.date


def list_expiries(symbol: str, sessions: list[Session]) -> list[_Expiry]:
    """Every expiration of `symbol` that falls on one of `sessions`, with its kind and listing date."""
    base = symbol.split(":")[-1]
    out: list[_Expiry] = []
    by_month: dict[tuple[int, int], list[Session]] = {}
    for s in sessions:
        by_month.setdefault((s.date.year, s.date.month), []).append(s)
    monthly_dates = set()
    quarterly_dates = set()
    for (y, m), ss in by_month.items():
        third_friday = _third_friday(y, m)
        cands = [s for s in ss if s.date <= third_friday]
        if cands:
            monthly_dates.add(cands[-1].date)  # a holiday Friday moves expiry to the session before
        if m in (3, 6, 9, 12) and (symbol in QUARTERLIES or base in QUARTERLIES):
            quarterly_dates.add(ss[-1].date)
    weekly_from = WEEKLY_FRIDAYS_FROM.get(symbol) or (WEEKLIES_FOR_LARGE_CAPS_FROM if base in LARGE_CAPS else None)
    wed_from, mon_from = WEDNESDAY_FROM.get(symbol), MONDAY_FROM.get(symbol)
    daily_from = EVERY_DAY_FROM.get(symbol)
    weekly_dates = _week_day_expiries(sessions, 4, later=False) if weekly_from else set()
    wed_dates = _week_day_expiries(sessions, 2, later=False) if wed_from else set()
    mon_dates = _week_day_expiries(sessions, 0, later=True) if mon_from else set()
    for s in sessions:
        d = s.date
        if d in monthly_dates:
            kind = "monthly"
        elif d in quarterly_dates:
            kind = "quarterly"
        elif weekly_from and d >= weekly_from and d in weekly_dates:
            kind = "weekly"
        elif daily_from and d >= daily_from:
            kind = "daily"
        elif (wed_from and d >= wed_from and d in wed_dates) or (mon_from and d >= mon_from and d in mon_dates):
            kind = "daily"
        else:
            continue
        out.append(_Expiry(d, s.close.timestamp(), kind, d - dt.timedelta(days=LISTING_DAYS[kind])))
    return out


def _week_day_expiries(sessions: list[Session], weekday: int, later: bool) -> set[dt.date]:
    """Per calendar week, the session on `weekday`, or when that day is a holiday the nearest
    session of the same week before it (Friday and Wednesday expiries) or after it (Monday)."""
    by_week: dict[tuple[int, int], list[dt.date]] = {}
    for s in sessions:
        by_week.setdefault(s.date.isocalendar()[:2], []).append(s.date)
    out = set()
    for days in by_week.values():
        if later:
            pick = [d for d in days if d.weekday() >= weekday]
            if pick:
                out.add(pick[0])
        else:
            pick = [d for d in days if d.weekday() <= weekday]
            if pick:
                out.add(pick[-1])
    return out


def _third_friday(y: int, m: int) -> dt.date:
    first = dt.date(y, m, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


class ChainModel:
    """Steps through a daily price path and yields the modelled chain of each session."""

    def __init__(self, symbol: str, dates: list[dt.date], close: np.ndarray, volume: np.ndarray | None = None,
                 params: ModelParams | None = None):
        self.symbol = symbol
        self.params = params or ModelParams()
        self.dates = list(dates)
        self.close = np.asarray(close, dtype=float)
        # Share volume is accepted for the callers' convenience but not used: index bars (SPX) have
        # none, and the option flow is modelled from the price path alone (see _flow).
        self._rv = _realised_vol(self.close)
        self._flow = _option_flow(symbol, self._rv, self.params)
        horizon_end = self.dates[-1] + dt.timedelta(days=LISTING_DAYS["monthly"] + 5)
        all_sessions = sessions_between(self.dates[0], horizon_end)
        self.expiries = [e for e in list_expiries(symbol, all_sessions) if e.date >= self.dates[0]]
        n_exp = len(self.expiries)
        n_k = int(2 * STRIKE_SPAN / self.params.step_fraction) + 3
        self._strikes = np.zeros((n_exp, n_k))
        self._call_oi = np.zeros((n_exp, n_k))
        self._put_oi = np.zeros((n_exp, n_k))
        self._exp_dates = np.array([e.date for e in self.expiries], dtype="datetime64[D]")
        self._listed = np.array([e.listed for e in self.expiries], dtype="datetime64[D]")
        self._kind_w = np.array([KIND_WEIGHT[e.kind] for e in self.expiries])
        self._has_grid = np.zeros(n_exp, dtype=bool)
        self._i = -1

    def iv_level(self, i: int) -> float:
        """ATM implied vol of session i as known at its open (from realised vol to the prior close)."""
        p = self.params
        rv = self._rv[max(i - 1, 0)]
        return float(max(0.05, (rv if np.isfinite(rv) else p.iv_long_run) * p.iv_premium))

    def _grid_for(self, rows: np.ndarray, price: float) -> None:
        step = strike_step(price, self.params.step_fraction)
        n_k = self._strikes.shape[1]
        center = round(price / step) * step
        grid = center + step * (np.arange(n_k) - n_k // 2)
        self._strikes[rows] = np.where(grid > 0, grid, np.nan)
        self._has_grid[rows] = True

    def advance_to(self, i: int) -> None:
        """Accumulate OI through the end of session i (OI published the next morning)."""
        while self._i < i:
            self._i += 1
            self._step(self._i)

    def _step(self, i: int) -> None:
        p = self.params
        day = np.datetime64(self.dates[i], "D")
        live = np.flatnonzero((self._listed <= day) & (self._exp_dates >= day))
        if live.size == 0:
            return
        new = live[~self._has_grid[live]]
        if new.size:
            self._grid_for(new, self.close[i])
        k = self._strikes[live]
        s = self.close[i]
        sigma = self.iv_level(i + 1)
        dte = (self._exp_dates[live] - day).astype(float)
        sd = sigma * np.sqrt(np.maximum(dte, 1.0) / 365.0)[:, None]
        x = np.log(k / s)
        call_w = np.exp(-0.5 * ((x - p.call_center_sd * sd) / (p.call_width_sd * sd + 0.005)) ** 2)
        put_w = np.exp(-0.5 * ((x - p.put_center_sd * sd) / (p.put_width_sd * sd + 0.005)) ** 2)
        step = np.nanmin(np.diff(k, axis=1), axis=1)[:, None]
        round_k = np.isclose(np.mod(k, 2 * step), 0) | np.isclose(np.mod(k, 2 * step), 2 * step)
        boost = np.where(round_k, p.round_strike_boost, 1.0)
        call_w = np.nan_to_num(call_w * boost)
        put_w = np.nan_to_num(put_w * boost)
        call_w /= np.maximum(call_w.sum(axis=1, keepdims=True), 1e-12)
        put_w /= np.maximum(put_w.sum(axis=1, keepdims=True), 1e-12)
        share = self._kind_w[live] * np.exp(-dte / p.dte_decay_days)
        share /= share.sum()
        contracts = self._flow[i]
        call_flow = contracts / (1 + p.put_call_volume)
        put_flow = contracts - call_flow
        keep = 1.0 - p.oi_turnover
        self._call_oi[live] = self._call_oi[live] * keep + call_flow * share[:, None] * call_w
        self._put_oi[live] = self._put_oi[live] * keep + put_flow * share[:, None] * put_w

    def chain_for(self, i: int) -> OptionChain:
        """The chain as known on the morning of session i: OI accumulated through session i-1."""
        p = self.params
        self.advance_to(i - 1)
        day = np.datetime64(self.dates[i], "D")
        live = np.flatnonzero((self._exp_dates >= day) & self._has_grid
                              & ((self._exp_dates - day).astype(int) <= p.dte_window))
        if live.size == 0:
            return _empty_chain(self.symbol, self.dates[i])
        k = self._strikes[live]
        coi = np.round(self._call_oi[live])
        poi = np.round(self._put_oi[live])
        dte = (self._exp_dates[live] - day).astype(float)
        t = np.maximum(dte, 0.5)[:, None] / 365.0
        atm = self.iv_level(i)
        term = p.iv_long_run + (atm - p.iv_long_run) * np.exp(-dte / p.iv_term_days)[:, None]
        spot = self.close[i - 1] if i > 0 else self.close[i]
        m = np.log(k / spot) / (term * np.sqrt(np.maximum(t, 7 / 365)))
        iv = np.clip(term * (1 + p.skew_slope * m + p.skew_curve * m * m), 0.05, 3.0)
        exp_close = np.array([self.expiries[j].close_ts for j in live])[:, None] * np.ones_like(k)
        exp_day = np.repeat(self._exp_dates[live], k.shape[1]).reshape(k.shape)
        ok = np.isfinite(k)
        # Far wings hold a few contracts with no measurable gamma; dropping those under MIN_OI_SHARE
        # of the chain's largest line keeps chains small (exposure cost is per contract).
        floor = max(MIN_OI_SHARE * max(coi.max(initial=0.0), poi.max(initial=0.0)), 1.0)
        c_ok = ok & (coi >= floor)
        p_ok = ok & (poi >= floor)
        return OptionChain(
            underlying=self.symbol,
            as_of=self.dates[i],
            expiry=np.concatenate([exp_day[c_ok], exp_day[p_ok]]),
            expiry_close=np.concatenate([exp_close[c_ok], exp_close[p_ok]]),
            strike=np.concatenate([k[c_ok], k[p_ok]]),
            is_call=np.concatenate([np.ones(c_ok.sum(), bool), np.zeros(p_ok.sum(), bool)]),
            open_interest=np.concatenate([coi[c_ok], poi[p_ok]]),
            iv=np.concatenate([iv[c_ok], iv[p_ok]]),
            source="modelled",
        )


def _option_flow(symbol: str, rv: np.ndarray, p: ModelParams) -> np.ndarray:
    base = PRODUCT_CONTRACTS.get(symbol, PRODUCT_CONTRACTS.get(symbol.split(":")[-1], DEFAULT_CONTRACTS))
    level = np.where(np.isfinite(rv), rv, p.iv_long_run) / p.iv_long_run
    return base * np.clip(level, 0.25, 4.0) ** p.activity_elasticity


def _empty_chain(symbol: str, day: dt.date) -> OptionChain:
    e = np.empty(0)
    return OptionChain(symbol, day, e.astype("datetime64[D]"), e, e, e.astype(bool), e, e, "modelled")


def _realised_vol(close: np.ndarray, window: int = 20) -> np.ndarray:
    """Annualised vol of the `window` log returns ending at each session (NaN before that).

    Each window is summed on its own (no running cumsum): a value must not depend, even in its last
    bit, on where the price series starts, or the chain of a date would depend on the run's window.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    r = np.diff(np.log(close), prepend=np.nan)
    out = np.full(close.size, np.nan)
    if close.size > window:
        sq = np.nan_to_num(r * r)
        out[window:] = np.sqrt(sliding_window_view(sq, window)[1:].sum(axis=1) / window * 252.0)
    return out


def warmup_start(first_session: dt.date) -> dt.date:
    """How far back prices are needed so every expiry live on `first_session` has its whole history."""
    return first_session - dt.timedelta(days=LISTING_DAYS["monthly"] + 40)
