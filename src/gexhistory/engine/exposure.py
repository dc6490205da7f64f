"""Gamma exposure of a chain at a spot and time: net/call/put GEX, flip point, walls, regime.

Sign convention (SPEC §4.1): dealers are long the calls and short the puts that customers hold, so
call GEX counts positive and put GEX negative. Units: dollars of delta per 1% move of the underlying.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.flip import FLIP_GRID_POINTS, flips_for_positions, pad_positions
from gexhistory.engine.greeks import SECONDS_PER_YEAR, bs_gamma, dollar_gamma_per_pct

GEX_UNIT = "usd_per_1pct_move"
FLIP_SEARCH = 0.20  # flip searched within +-20% of spot
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


def _flip_keep(chain: OptionChain, at_ts: np.ndarray, conv: Conventions) -> np.ndarray:
    """Contracts a session's flip search uses: live at some snapshot and inside the DTE window at another."""
    return (chain.open_interest > 0) & (chain.expiry_close > at_ts.min()) & (
        chain.expiry_close - at_ts.max() <= (conv.dte_window + 1) * SECONDS_PER_YEAR / 365.0)


def find_flips(chain: OptionChain, spots, at_ts_list, conv: Conventions) -> list[float | None]:
    """For each (spot, time): the zero crossing of the net GEX profile nearest to spot within
    +-flip_search, or None when the profile does not cross zero there (engine/flip.py)."""
    at_ts = np.asarray(at_ts_list, dtype=float)
    k, e, iv, sign_oi = _signed_positions(chain, _flip_keep(chain, at_ts, conv))
    return flips_for_positions(k, e, iv, sign_oi, spots, at_ts, conv.r, conv.q, conv.flip_search)


def find_flip(chain: OptionChain, spot: float, at_ts: float, conv: Conventions) -> float | None:
    return find_flips(chain, [spot], [at_ts], conv)[0]


@dataclass
class _Book:
    """A chain's groupings, computed once and shared by every snapshot of its session."""

    strikes: np.ndarray  # unique strikes, ascending
    kinv: np.ndarray  # per contract: index into strikes
    ginv: np.ndarray  # per contract: its (strike, expiry, IV) group; a group has one gamma
    gfirst: np.ndarray  # one contract of each group, in (strike, expiry, IV) order
    eorder: np.ndarray  # contracts by expiry (stable)
    estarts: np.ndarray  # where each expiry starts in eorder
    egroup: np.ndarray  # expiry index of each position of eorder
    expiry_day: np.ndarray

    @classmethod
    def of(cls, chain: OptionChain) -> "_Book":
        k, e, iv = chain.strike, chain.expiry_close, chain.iv
        if k.size == 0:
            none = np.zeros(0, dtype=np.intp)
            return cls(np.zeros(0), none, none, none, none, none, none, chain.expiry.astype("datetime64[D]"))
        order = np.lexsort((iv, e, k))
        ks, es, ivs = k[order], e[order], iv[order]
        newk = np.r_[True, ks[1:] != ks[:-1]]
        newg = newk | np.r_[False, (es[1:] != es[:-1]) | (ivs[1:] != ivs[:-1])]
        ginv = np.empty(k.size, dtype=np.intp)
        ginv[order] = np.cumsum(newg) - 1
        if np.isnan(k).any():  # NaN strikes: np.unique's grouping (one NaN bin), as walls always had
            strikes, kinv = np.unique(k, return_inverse=True)
        else:
            strikes = ks[newk]
            kinv = np.empty(k.size, dtype=np.intp)
            kinv[order] = np.cumsum(newk) - 1
        eorder = np.argsort(e, kind="stable")
        ee = e[eorder]
        new_e = np.r_[True, ee[1:] != ee[:-1]]
        return cls(strikes, kinv, ginv, order[newg], eorder, np.flatnonzero(new_e), np.cumsum(new_e) - 1,
                   chain.expiry.astype("datetime64[D]"))

    def flip_positions(self, chain: OptionChain, keep: np.ndarray):
        """What _signed_positions returns, from the groups already made."""
        g = self.gfirst
        sign_oi = np.where(chain.is_call & keep, chain.open_interest, 0.0) - np.where(
            ~chain.is_call & keep, chain.open_interest, 0.0)
        merged = np.bincount(self.ginv, sign_oi, g.size)
        nz = merged != 0
        return chain.strike[g][nz], chain.expiry_close[g][nz], chain.iv[g][nz], merged[nz]


def _atm_ivs(chain: OptionChain, book: _Book, keep: np.ndarray, t: np.ndarray, spots: np.ndarray,
             target_days: float = 30.0) -> list[float | None]:
    """30-day ATM IV per snapshot: per expiry the IV at the strike nearest spot (mean of the contracts
    there), interpolated in total variance."""
    n = spots.size
    if chain.strike.size == 0:
        return [None] * n
    eo, st = book.eorder, book.estarts
    ok = (keep & np.isfinite(chain.iv))[:, eo]
    dist = np.where(ok, np.abs(chain.strike[eo] - spots[:, None]), np.inf)
    nearest = np.minimum.reduceat(dist, st, axis=1)
    atm = ok & (dist == nearest[:, book.egroup])
    sums = np.add.reduceat(np.where(atm, chain.iv[eo], 0.0), st, axis=1)
    counts = np.add.reduceat(atm, st, axis=1)
    exp_t = t[:, eo[st]]
    target = target_days / 365.0
    out: list[float | None] = []
    for j in range(n):
        sel = counts[j] > 0
        if not sel.any():
            out.append(None)
            continue
        ts, vol = exp_t[j, sel], sums[j, sel] / counts[j, sel]
        if target <= ts[0]:
            out.append(float(vol[0]))
        elif target >= ts[-1]:
            out.append(float(vol[-1]))
        else:  # linear in total variance, then back to vol
            out.append(float(np.sqrt(np.interp(target, ts, vol * vol * ts) / target)))
    return out


def _max_pain(chain: OptionChain, expiry_close: float) -> float:
    """For one expiry: the strike that minimises the intrinsic value paid to holders."""
    m = (chain.expiry_close == expiry_close) & (chain.open_interest > 0)
    k, oi, call = chain.strike[m], chain.open_interest[m], chain.is_call[m]
    cand = np.unique(k)
    pay_calls = (np.maximum(cand[:, None] - k[None, :], 0) * (oi * call)[None, :]).sum(axis=1)
    pay_puts = (np.maximum(k[None, :] - cand[:, None], 0) * (oi * ~call)[None, :]).sum(axis=1)
    return float(cand[np.argmin(pay_calls + pay_puts)])


def _snapshots(chain: OptionChain, spots, times: list[dt.datetime], conv: Conventions, flips: list,
               book: _Book | None = None) -> list[GexSnapshot]:
    """Every snapshot of one chain at once: arrays are (snapshot, contract)."""
    book = book or _Book.of(chain)
    n = len(times)
    spots = np.asarray(spots, dtype=float).reshape(n)
    at_ts = np.array([t.timestamp() for t in times])
    oi, is_call = chain.open_interest, chain.is_call
    t = (chain.expiry_close[None, :] - at_ts[:, None]) / SECONDS_PER_YEAR
    keep = (t > 0) & (t <= (conv.dte_window + 1) / 365.0) & (oi > 0)
    if conv.gamma_source == "vendor" and chain.gamma is not None:
        gamma = np.where(keep, chain.gamma, 0.0)
    else:  # one gamma per (strike, expiry, IV) group: a call and its put share it
        g = book.gfirst
        with np.errstate(all="ignore"):
            group_gamma = bs_gamma(spots[:, None], chain.strike[g], t[:, g], chain.iv[g], conv.r, conv.q)
        gamma = np.where(keep, group_gamma[:, book.ginv], 0.0)
    dollars = dollar_gamma_per_pct(gamma, np.where(keep, oi, 0.0), spots[:, None], chain.multiplier)
    call_d = np.where(is_call, dollars, 0.0)
    put_d = np.where(is_call, 0.0, -dollars)
    call_gex, put_gex = call_d.sum(axis=1), put_d.sum(axis=1)

    strikes = book.strikes
    n_k = strikes.size
    bins = (book.kinv[None, :] + n_k * np.arange(n)[:, None]).ravel()
    call_by_k = np.bincount(bins, call_d.ravel(), n * n_k).reshape(n, n_k)
    put_by_k = np.bincount(bins, put_d.ravel(), n * n_k).reshape(n, n_k)
    above = (strikes >= spots[:, None]) & (call_by_k > 0)
    below = (strikes <= spots[:, None]) & (put_by_k < 0)
    call_wall = np.argmax(np.where(above, call_by_k, -np.inf), axis=1) if n_k else np.zeros(n, int)
    put_wall = np.argmax(np.where(below, -put_by_k, -np.inf), axis=1) if n_k else np.zeros(n, int)
    has_call_wall, has_put_wall = above.any(axis=1), below.any(axis=1)

    today = np.array([np.datetime64(t.date(), "D") for t in times])
    week_end = today + np.array([4 - t.weekday() for t in times]).astype("timedelta64[D]")  # Fridays
    day = book.expiry_day[None, :]
    gross = np.abs(dollars)
    zero_dte = np.where(keep & (day == today[:, None]), gross, 0.0).sum(axis=1)
    this_week = np.where(keep & (day <= week_end[:, None]), gross, 0.0).sum(axis=1)
    next_week = np.where(keep & (day > week_end[:, None]) & (day <= week_end[:, None] + 7), gross, 0.0).sum(axis=1)
    call_oi = np.where(keep & is_call, oi, 0.0).sum(axis=1)
    put_oi = np.where(keep & ~is_call, oi, 0.0).sum(axis=1)

    atm_ivs = _atm_ivs(chain, book, keep, t, spots)
    first_live = np.where(keep, chain.expiry_close, np.inf).min(axis=1) if oi.size else np.full(n, np.inf)
    pains: dict[float, float] = {}
    out = []
    for j in range(n):
        spot, flip = float(spots[j]), flips[j]
        net = float(call_gex[j]) + float(put_gex[j])
        pain = None
        if np.isfinite(first_live[j]):
            fe = float(first_live[j])
            pain = pains[fe] if fe in pains else pains.setdefault(fe, _max_pain(chain, fe))
        out.append(GexSnapshot(
            spot=spot,
            net_gex=net,
            call_gex=float(call_gex[j]),
            put_gex=float(put_gex[j]),
            flip_point=flip,
            flip_found=flip is not None,
            call_wall=float(strikes[call_wall[j]]) if has_call_wall[j] else None,
            put_wall=float(strikes[put_wall[j]]) if has_put_wall[j] else None,
            atm_iv=atm_ivs[j],
            put_call_ratio=float(put_oi[j] / call_oi[j]) if call_oi[j] > 0 else None,
            zero_dte_gamma=float(zero_dte[j]),
            gamma_expiring_this_week=float(this_week[j]),
            gamma_expiring_next_week=float(next_week[j]),
            max_pain=pain,
            regime=classify_regime(net, float(call_gex[j]) - float(put_gex[j]), conv.neutral_band),
            mm_state=mm_state_for(spot, flip, net),
            strikes=strikes,
            call_gex_by_strike=call_by_k[j],
            put_gex_by_strike=put_by_k[j],
        ))
    return out


def compute_exposure(
    chain: OptionChain, spot: float, at: dt.datetime, conv: Conventions | None = None,
    with_flip: bool = True, flip_point: float | None | object = ...,
) -> GexSnapshot:
    """Everything gexhistory stores about one snapshot, from one chain at one spot and time."""
    conv = conv or Conventions()
    if flip_point is not ...:
        flip = flip_point  # already found by a batched search
    else:
        flip = find_flip(chain, spot, at.timestamp(), conv) if with_flip else None
    return _snapshots(chain, [spot], [at], conv, [flip])[0]


def compute_session(chain: OptionChain, spots, times: list[dt.datetime], conv: Conventions | None = None) -> list[GexSnapshot]:
    """The snapshots of one session: one chain (OI is published once a day), several spots and times."""
    return compute_sessions_batch([chain], [spots], [times], conv)[0]


def compute_sessions_batch(chains: list[OptionChain], spots: list, times: list[list[dt.datetime]],
                           conv: Conventions | None = None) -> list[list[GexSnapshot]]:
    """compute_session for many sessions at once (same results): the flip search of all their snapshots
    runs as one vectorised solve, which is where a session's time went."""
    conv = conv or Conventions()
    books = [_Book.of(c) for c in chains]
    at_ts = [np.array([t.timestamp() for t in ts]) for ts in times]
    sets = [b.flip_positions(c, _flip_keep(c, a, conv)) for b, c, a in zip(books, chains, at_ts)]
    # A session with no position has no flip at all (not even an all-zero profile's): leave it out.
    counts = [len(ts) if len(p[0]) else 0 for ts, p in zip(times, sets)]
    spot_rows = [np.asarray(s, dtype=float).reshape(len(ts))[:n] for s, ts, n in zip(spots, times, counts)]
    k, e, iv, w = pad_positions(sets, counts)
    flips = flips_for_positions(k, e, iv, w, np.concatenate(spot_rows or [np.zeros(0)]),
                                np.concatenate([a[:n] for a, n in zip(at_ts, counts)] or [np.zeros(0)]),
                                conv.r, conv.q, conv.flip_search)
    out, r = [], 0
    for chain, book, s, ts, n in zip(chains, books, spots, times, counts):
        out.append(_snapshots(chain, s, ts, conv, flips[r:r + n] if n else [None] * len(ts), book))
        r += n
    return out
