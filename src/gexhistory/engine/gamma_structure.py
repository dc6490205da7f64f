"""Per-expiry, per-strike gamma of a chain, and what the signals read from it (SPEC §6).

The same Black-Scholes dollar gamma as exposure.py (gamma x OI x 100 x S^2 x 0.01, calls +, puts -,
contracts live within the DTE window), kept per (expiry, strike) instead of summed, so walls,
expiry buckets, wall expiry ratios and the monthly magnet come from one vectorised pass.

DTE is calendar days from the session date to the expiry date. At the close snapshot the day's own
expiry has expired, so the 0-DTE bucket is empty there by definition.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.greeks import SECONDS_PER_YEAR, bs_gamma, dollar_gamma_per_pct

DTE_BUCKETS = (("0dte", 0, 0), ("1_2dte", 1, 2), ("3_7dte", 3, 7), ("8_14dte", 8, 14),
               ("15_30dte", 15, 30), ("over_30dte", 31, 10**6))
SIGNIFICANT_QUANTILE = 80.0  # a significant wall is in the top 20% of its side by |gamma|
SOON_DTE = 5  # "expiring within 5 days"
NEXT_DTE = (6, 14)
MAGNET_MIN_DTE = 7  # the monthly magnet is a forward destination, not today's pin


@dataclass
class GammaStructure:
    spot: float
    strikes: np.ndarray  # (n_k,) ascending
    expiries: np.ndarray  # (n_e,) datetime64[D] ascending
    dte: np.ndarray  # (n_e,) calendar days
    call: np.ndarray  # (n_e, n_k) dollar gamma of calls, >= 0
    put: np.ndarray  # (n_e, n_k) dollar gamma of puts, <= 0

    @property
    def call_by_strike(self) -> np.ndarray:
        return self.call.sum(axis=0)

    @property
    def put_by_strike(self) -> np.ndarray:
        return self.put.sum(axis=0)


def gamma_structure(chain: OptionChain, spot: float, at: dt.datetime, dte_window: int = 60,
                    r: float = 0.04, q: float = 0.013) -> GammaStructure:
    t = (chain.expiry_close - at.timestamp()) / SECONDS_PER_YEAR
    keep = (t > 0) & (t <= (dte_window + 1) / 365.0) & (chain.open_interest > 0)
    k, e, call = chain.strike[keep], chain.expiry[keep].astype("datetime64[D]"), chain.is_call[keep]
    g = bs_gamma(spot, k, t[keep], chain.iv[keep], r, q)
    dollars = dollar_gamma_per_pct(g, chain.open_interest[keep], spot, chain.multiplier)
    strikes, ki = np.unique(k, return_inverse=True)
    expiries, ei = np.unique(e, return_inverse=True)
    shape = (expiries.size, strikes.size)
    flat = ei * strikes.size + ki
    calls = np.bincount(flat, np.where(call, dollars, 0.0), shape[0] * shape[1]).reshape(shape)
    puts = -np.bincount(flat, np.where(call, 0.0, dollars), shape[0] * shape[1]).reshape(shape)
    today = np.datetime64(at.date(), "D")
    dte = (expiries - today).astype(int)
    return GammaStructure(float(spot), strikes, expiries, dte, calls, puts)


def bucket_gamma(gs: GammaStructure) -> dict[str, float]:
    """Gross dollar gamma (|calls| + |puts|) per DTE bucket."""
    gross = (gs.call - gs.put).sum(axis=1)
    return {name: float(gross[(gs.dte >= lo) & (gs.dte <= hi)].sum()) for name, lo, hi in DTE_BUCKETS}


@dataclass
class SignalWalls:
    call_above: float | None  # nearest significant call strike above spot
    call_above_gamma: float
    put_below: float | None  # nearest significant put strike below spot
    put_below_gamma: float
    call_nearest: float | None  # nearest significant call strike on either side
    put_nearest: float | None

    def call_distance_pct(self, spot: float) -> float | None:
        return None if self.call_above is None else (self.call_above - spot) / spot * 100.0

    def put_distance_pct(self, spot: float) -> float | None:
        return None if self.put_below is None else (spot - self.put_below) / spot * 100.0


def _significant(strikes: np.ndarray, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    live = gamma != 0
    if not live.any():
        return strikes[:0], gamma[:0]
    cut = np.percentile(np.abs(gamma[live]), SIGNIFICANT_QUANTILE)
    sig = live & (np.abs(gamma) >= cut)
    return strikes[sig], gamma[sig]


def signal_walls(gs: GammaStructure) -> SignalWalls:
    """Per strike summed over expirations; significant = top 20% of each side by |gamma|."""
    s = gs.spot
    ck, cg = _significant(gs.strikes, gs.call_by_strike)
    pk, pg = _significant(gs.strikes, gs.put_by_strike)
    above, below = ck > s, pk < s
    ca = int(np.argmin(ck[above] - s)) if above.any() else None
    pb = int(np.argmin(s - pk[below])) if below.any() else None
    return SignalWalls(
        call_above=float(ck[above][ca]) if ca is not None else None,
        call_above_gamma=float(cg[above][ca]) if ca is not None else 0.0,
        put_below=float(pk[below][pb]) if pb is not None else None,
        put_below_gamma=float(pg[below][pb]) if pb is not None else 0.0,
        call_nearest=float(ck[np.argmin(np.abs(ck - s))]) if ck.size else None,
        put_nearest=float(pk[np.argmin(np.abs(pk - s))]) if pk.size else None,
    )


@dataclass
class WallExpiry:
    """How a wall strike's gamma (one side) splits over time to expiry."""

    soon_ratio: float  # share expiring within 5 days
    next_ratio: float  # share in 6-14 DTE
    first_expiry: dt.date | None  # the nearest expiry within 5 days holding gamma at the strike
    first_dte: int | None


def wall_expiry(gs: GammaStructure, strike: float | None, side: str) -> WallExpiry:
    if strike is None:
        return WallExpiry(0.0, 0.0, None, None)
    col = np.flatnonzero(gs.strikes == strike)
    if col.size == 0:
        return WallExpiry(0.0, 0.0, None, None)
    g = np.abs((gs.call if side == "call" else gs.put)[:, col[0]])
    total = g.sum()
    if total <= 0:
        return WallExpiry(0.0, 0.0, None, None)
    soon = gs.dte <= SOON_DTE
    nxt = (gs.dte >= NEXT_DTE[0]) & (gs.dte <= NEXT_DTE[1])
    held = np.flatnonzero(soon & (g > 0))
    first = held[0] if held.size else None
    return WallExpiry(float(g[soon].sum() / total), float(g[nxt].sum() / total),
                      gs.expiries[first].astype(dt.date) if first is not None else None,
                      int(gs.dte[first]) if first is not None else None)


def is_monthly_expiry(days: np.ndarray) -> np.ndarray:
    """Standard monthly expirations: the third Friday, or the Thursday before it when that Friday is a
    holiday (datetime64[D] in, bool out)."""
    d = np.asarray(days, dtype="datetime64[D]")
    month_start = d.astype("datetime64[M]").astype("datetime64[D]")
    weekday_first = (month_start.astype(int) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    third_friday = month_start + ((4 - weekday_first) % 7 + 14).astype("timedelta64[D]")
    return (d == third_friday) | (d == third_friday - np.timedelta64(1, "D"))


@dataclass
class Magnets:
    expiry: dt.date | None
    above: float | None
    above_strength: float | None
    below: float | None
    below_strength: float | None


def monthly_magnets(gs: GammaStructure) -> Magnets:
    """The next standard monthly expiry at least 7 days out; on each side of spot, the strike holding
    its largest gross gamma. Strength (0-100) = that strike's monthly gamma as a percentage of the
    day's largest per-strike gross gamma over all expirations: 100 means the monthly magnet is the
    biggest concentration on the whole chain, 50 that it is half as big as the biggest wall."""
    cand = np.flatnonzero(is_monthly_expiry(gs.expiries) & (gs.dte >= MAGNET_MIN_DTE))
    if cand.size == 0 or gs.strikes.size == 0:
        return Magnets(None, None, None, None, None)
    row = cand[0]
    gross_all = (gs.call - gs.put).sum(axis=0)
    peak = gross_all.max()
    monthly = gs.call[row] - gs.put[row]
    out = {}
    for name, side in (("above", gs.strikes > gs.spot), ("below", gs.strikes < gs.spot)):
        m = side & (monthly > 0)
        if not m.any() or peak <= 0:
            out[name] = (None, None)
            continue
        j = np.flatnonzero(m)[np.argmax(monthly[m])]
        out[name] = (float(gs.strikes[j]), float(min(100.0, 100.0 * monthly[j] / peak)))
    return Magnets(gs.expiries[row].astype(dt.date), *out["above"], *out["below"])


def net_expiring_by(gs: GammaStructure, last_day: dt.date) -> float:
    """Signed net gamma of the expirations on or before `last_day`."""
    m = gs.expiries <= np.datetime64(last_day, "D")
    return float((gs.call[m] + gs.put[m]).sum())


def week_end(day: dt.date) -> dt.date:
    """The Friday of `day`'s week: "this week's" expirations are those on or before it."""
    return day + dt.timedelta(days=4 - day.weekday())


@dataclass
class SignalStructure:
    """Everything the signals read from one session's close chain."""

    walls: SignalWalls
    call_expiry: WallExpiry  # of walls.call_above
    put_expiry: WallExpiry  # of walls.put_below
    magnets: Magnets
    net_this_week: float  # net gamma expiring by this Friday


def signal_structure(chain: OptionChain, spot: float, at: dt.datetime, dte_window: int = 60,
                     r: float = 0.04, q: float = 0.013) -> SignalStructure:
    """One session, through the functions above: the readable reference of gamma_structure_batch."""
    gs = gamma_structure(chain, spot, at, dte_window, r, q)
    walls = signal_walls(gs)
    return SignalStructure(walls, wall_expiry(gs, walls.call_above, "call"), wall_expiry(gs, walls.put_below, "put"),
                           monthly_magnets(gs), net_expiring_by(gs, week_end(at.date())))
