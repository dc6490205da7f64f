"""The signal structure of one session written plainly, numpy call by numpy call: the reference that
engine/structure.py's vectorised pass must equal to the last bit (tests/test_signals_batch.py).

The same Black-Scholes dollar gamma as the engine (gamma x OI x 100 x S^2 x 0.01, calls +, puts -,
contracts live within the DTE window), kept per (expiry, strike): walls, wall expiry ratios, the
monthly magnet and the net gamma expiring this week each come from those two matrices.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.greeks import SECONDS_PER_YEAR, bs_gamma, dollar_gamma_per_pct
from gexhistory.engine.structure import (MAGNET_MIN_DTE, NEXT_DTE, SIGNIFICANT_QUANTILE, SOON_DTE, Magnets,
                                         SignalStructure, SignalWalls, WallExpiry, is_monthly_expiry)


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


def gamma_structure(chain: OptionChain, spot: float, at: dt.datetime, dte_window: int = 120,
                    r: float = 0.04, q: float = 0.013) -> GammaStructure:
    t = (chain.expiry_close - at.timestamp()) / SECONDS_PER_YEAR
    keep = (t > 0) & (t <= (dte_window + 1) / 365.0) & (chain.open_interest > 0)
    k, e, call = chain.strike[keep], chain.expiry[keep].astype("datetime64[D]"), chain.is_call[keep]
    with np.errstate(all="ignore"):  # a zero or missing IV: NaN gamma, as numpy gives it
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


def signal_structure(chain: OptionChain, spot: float, at: dt.datetime, dte_window: int = 120,
                     r: float = 0.04, q: float = 0.013) -> SignalStructure:
    """One session, through the functions above."""
    gs = gamma_structure(chain, spot, at, dte_window, r, q)
    walls = signal_walls(gs)
    return SignalStructure(walls, wall_expiry(gs, walls.call_above, "call"), wall_expiry(gs, walls.put_below, "put"),
                           monthly_magnets(gs), net_expiring_by(gs, week_end(at.date())))
