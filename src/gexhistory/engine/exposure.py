"""Gamma exposure of a chain at a spot and time: net/call/put GEX, flip point, walls, regime.

Sign convention (SPEC §4.1): dealers are long the calls and short the puts that customers hold, so
call GEX counts positive and put GEX negative. Units: dollars of delta per 1% move of the underlying.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.greeks import SECONDS_PER_YEAR, bs_gamma, dollar_gamma_per_pct

GEX_UNIT = "usd_per_1pct_move"
FLIP_SEARCH = 0.20  # flip searched within +-20% of spot
FLIP_GRID_POINTS = 25  # 1.67% spacing; each bracketed crossing is then refined exactly
NEUTRAL_BAND = 0.05  # |net| below 5% of gross (|call| + |put|) GEX is NEUTRAL

POSITIVE, NEGATIVE, NEUTRAL = "POSITIVE", "NEGATIVE", "NEUTRAL"
LONG_GAMMA, SHORT_GAMMA = "LONG_GAMMA", "SHORT_GAMMA"


@dataclass
class Conventions:
    """Everything that changes a GEX number; recorded with every run."""

    r: float = 0.04
    q: float = 0.013
    dte_window: int = 60  # contracts expiring within this many calendar days count
    time_convention: str = "calendar_seconds_to_expiry_close_over_365d"
    gamma_source: str = "black_scholes"  # or 'vendor' to use a file's own gamma
    flip_search: float = FLIP_SEARCH
    neutral_band: float = NEUTRAL_BAND

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class GexSnapshot:
    spot: float
    net_gex: float
    call_gex: float
    put_gex: float
    flip_point: float | None
    flip_found: bool
    call_wall: float | None
    put_wall: float | None
    atm_iv: float | None
    put_call_ratio: float | None
    zero_dte_gamma: float
    gamma_expiring_this_week: float
    gamma_expiring_next_week: float
    max_pain: float | None
    regime: str
    mm_state: str
    # Per-strike dollar gamma summed over expirations (for walls and signals).
    strikes: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    call_gex_by_strike: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    put_gex_by_strike: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def distance_to_flip_pct(self) -> float | None:
        if self.flip_point is None:
            return None
        return (self.spot - self.flip_point) / self.spot * 100.0


def classify_regime(net_gex: float, gross_gex: float, band: float = NEUTRAL_BAND) -> str:
    if gross_gex <= 0 or abs(net_gex) < band * gross_gex:
        return NEUTRAL
    return POSITIVE if net_gex > 0 else NEGATIVE


def mm_state_for(spot: float, flip_point: float | None, net_gex: float) -> str:
    """LONG_GAMMA above the flip, SHORT_GAMMA below; with no flip in range, the sign of net GEX."""
    if flip_point is not None:
        return LONG_GAMMA if spot >= flip_point else SHORT_GAMMA
    return LONG_GAMMA if net_gex >= 0 else SHORT_GAMMA


def _live(chain: OptionChain, at_ts: float, conv: Conventions):
    t = (chain.expiry_close - at_ts) / SECONDS_PER_YEAR
    keep = (t > 0) & (t <= (conv.dte_window + 1) / 365.0) & (chain.open_interest > 0)
    return keep, t


def net_gex_profile(chain: OptionChain, spots: np.ndarray, at_ts: float, conv: Conventions) -> np.ndarray:
    """Net GEX recomputed at hypothetical spot levels (chain, IVs and time held fixed)."""
    keep, t = _live(chain, at_ts, conv)
    sign_oi = np.where(chain.is_call[keep], 1.0, -1.0) * chain.open_interest[keep]
    s = np.asarray(spots, dtype=float)[:, None]
    g = bs_gamma(s, chain.strike[keep], t[keep], chain.iv[keep], conv.r, conv.q)
    return dollar_gamma_per_pct(g, sign_oi, s, chain.multiplier).sum(axis=1)


def _signed_positions(chain: OptionChain, keep: np.ndarray):
    """Calls (+OI) and puts (-OI) that share strike, expiry and IV have one gamma: merge them."""
    k, e, iv = chain.strike[keep], chain.expiry_close[keep], chain.iv[keep]
    sign_oi = np.where(chain.is_call[keep], 1.0, -1.0) * chain.open_interest[keep]
    if k.size == 0:
        return k, e, iv, sign_oi
    order = np.lexsort((iv, e, k))
    k, e, iv, sign_oi = k[order], e[order], iv[order], sign_oi[order]
    starts = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]) | (e[1:] != e[:-1]) | (iv[1:] != iv[:-1])])
    merged = np.add.reduceat(sign_oi, starts)
    nz = merged != 0
    return k[starts][nz], e[starts][nz], iv[starts][nz], merged[nz]


def find_flips(chain: OptionChain, spots, at_ts_list, conv: Conventions) -> list[float | None]:
    """For each (spot, time): the zero crossing of the net GEX profile nearest to spot within
    +-flip_search, or None when the profile does not cross zero there. One grid evaluation serves
    all the snapshots of a session."""
    spots = np.asarray(spots, dtype=float)
    at_ts = np.asarray(at_ts_list, dtype=float)
    keep = (chain.open_interest > 0) & (chain.expiry_close > at_ts.min()) & (
        chain.expiry_close - at_ts.max() <= (conv.dte_window + 1) * SECONDS_PER_YEAR / 365.0)
    k, e, iv, sign_oi = _signed_positions(chain, keep)
    out: list[float | None] = [None] * spots.size
    if k.size == 0:
        return out
    rel = np.linspace(1 - conv.flip_search, 1 + conv.flip_search, FLIP_GRID_POINTS)
    grid = spots[:, None] * rel[None, :]  # (n_snap, n_grid)
    t = (e[None, :] - at_ts[:, None]) / SECONDS_PER_YEAR  # (n_snap, n_contracts)
    live = t > 0
    w = np.where(live, sign_oi[None, :], 0.0)
    tt = np.where(live, t, 1.0)
    # The S^2 factor is positive, so the sign of sum(sign*OI*gamma*S) decides the crossing.
    g = bs_gamma(grid[:, :, None], k[None, None, :], tt[:, None, :], iv[None, None, :], conv.r, conv.q)
    vals = (g * w[:, None, :]).sum(axis=2) * grid
    for j in range(spots.size):
        wj, tj = w[j], tt[j]

        def profile(s, wj=wj, tj=tj):
            s = np.atleast_1d(np.asarray(s, dtype=float))[:, None]
            return (bs_gamma(s, k, tj, iv, conv.r, conv.q) * wj).sum(axis=1) * s[:, 0]

        out[j] = _nearest_crossing(profile, grid[j], vals[j], spots[j])
    return out


def find_flip(chain: OptionChain, spot: float, at_ts: float, conv: Conventions) -> float | None:
    return find_flips(chain, [spot], [at_ts], conv)[0]


def _nearest_crossing(profile, grid, vals, spot) -> float | None:
    exact = np.flatnonzero(vals == 0)
    cross = np.flatnonzero((np.signbit(vals[:-1]) != np.signbit(vals[1:])) & (vals[:-1] != 0) & (vals[1:] != 0))
    best = None
    if exact.size:
        i = exact[np.argmin(np.abs(grid[exact] - spot))]
        best = (abs(grid[i] - spot), float(grid[i]), None)
    if cross.size:
        mid = (grid[cross] + grid[cross + 1]) / 2
        i = cross[np.argmin(np.abs(mid - spot))]
        if best is None or abs(mid.min() - spot) < best[0]:
            best = (0.0, None, i)
    if best is None:
        return None
    if best[2] is None:
        return best[1]
    i = best[2]
    return _illinois(profile, grid[i], grid[i + 1], vals[i], vals[i + 1], spot)


def _illinois(f, a, b, fa, fb, scale, rel_tol=1e-12, max_iter=100) -> float:
    """Regula falsi with the Illinois modification: bracketing, and fast on smooth profiles."""
    side = 0
    c = a
    for _ in range(max_iter):
        c = (a * fb - b * fa) / (fb - fa)
        fc = float(f(c)[0])
        if fc == 0 or abs(b - a) < rel_tol * scale:
            return float(c)
        if np.signbit(fc) == np.signbit(fb):
            b, fb = c, fc
            if side == -1:
                fa /= 2
            side = -1
        else:
            a, fa = c, fc
            if side == 1:
                fb /= 2
            side = 1
        if abs(b - a) < rel_tol * scale:
            break
    return float(c)


def _atm_iv(chain: OptionChain, keep: np.ndarray, t: np.ndarray, spot: float, target_days: float = 30.0) -> float | None:
    """30-day ATM IV: per expiry the IV at the strike nearest spot, interpolated in total variance."""
    ok = keep & np.isfinite(chain.iv)
    if not ok.any():
        return None
    exp_t, dist, ivs = t[ok], np.abs(chain.strike[ok] - spot), chain.iv[ok]
    order = np.lexsort((dist, exp_t))
    exp_t, dist, ivs = exp_t[order], dist[order], ivs[order]
    starts = np.flatnonzero(np.r_[True, exp_t[1:] != exp_t[:-1]])
    nearest = np.repeat(dist[starts], np.diff(np.r_[starts, exp_t.size]))
    atm = dist == nearest  # every contract at the nearest strike of its expiry (call and put)
    group = np.cumsum(np.r_[True, exp_t[1:] != exp_t[:-1]]) - 1
    ts = exp_t[starts]
    vol = np.bincount(group[atm], ivs[atm], ts.size) / np.bincount(group[atm], None, ts.size)
    target = target_days / 365.0
    if target <= ts[0]:
        return float(vol[0])
    if target >= ts[-1]:
        return float(vol[-1])
    total_var = np.interp(target, ts, vol * vol * ts)  # linear in total variance, then back to vol
    return float(np.sqrt(total_var / target))


def _max_pain(chain: OptionChain, keep: np.ndarray) -> float | None:
    """For the nearest live expiry: the strike that minimises the intrinsic value paid to holders."""
    if not keep.any():
        return None
    first = chain.expiry_close[keep].min()
    m = keep & (chain.expiry_close == first)
    k, oi, call = chain.strike[m], chain.open_interest[m], chain.is_call[m]
    cand = np.unique(k)
    pay_calls = (np.maximum(cand[:, None] - k[None, :], 0) * (oi * call)[None, :]).sum(axis=1)
    pay_puts = (np.maximum(k[None, :] - cand[:, None], 0) * (oi * ~call)[None, :]).sum(axis=1)
    return float(cand[np.argmin(pay_calls + pay_puts)])


def compute_exposure(
    chain: OptionChain, spot: float, at: dt.datetime, conv: Conventions | None = None,
    with_flip: bool = True, flip_point: float | None | object = ...,
) -> GexSnapshot:
    """Everything gexhistory stores about one snapshot, from one chain at one spot and time."""
    conv = conv or Conventions()
    at_ts = at.timestamp()
    keep, t = _live(chain, at_ts, conv)
    if conv.gamma_source == "vendor" and chain.gamma is not None:
        gamma = np.where(keep, chain.gamma, 0.0)
    else:
        gamma = np.zeros_like(chain.strike, dtype=float)
        gamma[keep] = bs_gamma(spot, chain.strike[keep], t[keep], chain.iv[keep], conv.r, conv.q)
    dollars = dollar_gamma_per_pct(gamma, np.where(keep, chain.open_interest, 0.0), spot, chain.multiplier)
    call_d = np.where(chain.is_call, dollars, 0.0)
    put_d = np.where(chain.is_call, 0.0, -dollars)
    call_gex, put_gex = float(call_d.sum()), float(put_d.sum())
    net = call_gex + put_gex

    strikes, inverse = np.unique(chain.strike, return_inverse=True)
    call_by_k = np.bincount(inverse, call_d, strikes.size)
    put_by_k = np.bincount(inverse, put_d, strikes.size)
    above = (strikes >= spot) & (call_by_k > 0)
    below = (strikes <= spot) & (put_by_k < 0)
    call_wall = float(strikes[above][np.argmax(call_by_k[above])]) if above.any() else None
    put_wall = float(strikes[below][np.argmax(-put_by_k[below])]) if below.any() else None

    if flip_point is not ...:
        flip = flip_point  # already found by compute_session's batched search
    else:
        flip = find_flip(chain, spot, at_ts, conv) if with_flip else None

    expiry_day = chain.expiry.astype("datetime64[D]")
    today = np.datetime64(at.date(), "D")
    week_end = today + np.timedelta64(4 - at.weekday(), "D")  # this week's Friday
    gross = np.abs(dollars)
    zero_dte = float(gross[keep & (expiry_day == today)].sum())
    this_week = float(gross[keep & (expiry_day <= week_end)].sum())
    next_week = float(gross[keep & (expiry_day > week_end) & (expiry_day <= week_end + 7)].sum())

    call_oi = float(chain.open_interest[keep & chain.is_call].sum())
    put_oi = float(chain.open_interest[keep & ~chain.is_call].sum())
    return GexSnapshot(
        spot=float(spot),
        net_gex=net,
        call_gex=call_gex,
        put_gex=put_gex,
        flip_point=flip,
        flip_found=flip is not None,
        call_wall=call_wall,
        put_wall=put_wall,
        atm_iv=_atm_iv(chain, keep, t, spot),
        put_call_ratio=put_oi / call_oi if call_oi > 0 else None,
        zero_dte_gamma=zero_dte,
        gamma_expiring_this_week=this_week,
        gamma_expiring_next_week=next_week,
        max_pain=_max_pain(chain, keep),
        regime=classify_regime(net, call_gex - put_gex, conv.neutral_band),
        mm_state=mm_state_for(spot, flip, net),
        strikes=strikes,
        call_gex_by_strike=call_by_k,
        put_gex_by_strike=put_by_k,
    )


def compute_session(chain: OptionChain, spots, times: list[dt.datetime], conv: Conventions | None = None) -> list[GexSnapshot]:
    """The snapshots of one session: one chain (OI is published once a day), several spots and times."""
    conv = conv or Conventions()
    flips = find_flips(chain, spots, [t.timestamp() for t in times], conv)
    return [compute_exposure(chain, float(s), t, conv, flip_point=f) for s, t, f in zip(spots, times, flips)]
