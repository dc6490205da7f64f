"""Gamma exposure of a chain at a spot and time: net/call/put GEX, flip point, walls, regime.

`compute_gex` is the one entry point: the backfill, chain imports, live snapshots, validate and the
strike profile all get their GEX numbers from it (compute_gex_one is its one-chain form).

Sign convention (docs/computation.md#gex): dealers are long the calls and short the puts that customers hold, so
call GEX counts positive and put GEX negative. Units: dollars of delta per 1% move of the underlying.

Every snapshot of every session in a call is computed at once: the sessions' chains become one flat book
of positions (engine/book.py), each snapshot is paired with its session's positions, and every figure is a
reduction over one snapshot's own pairs (engine/segments.py). A session's numbers are therefore the same
whether it is computed alone or with hundreds of others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gexhistory.engine.book import ChainBook, max_pain
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.flip import Profiles, TextbookProfile, solve_flips
from gexhistory.engine.greeks import INV_SQRT_2PI, MIN_T_YEARS, SECONDS_PER_YEAR, d1, gamma_from_parts, gaussian
from gexhistory.engine.params import FLIP_SEARCH, NEUTRAL_BAND, Conventions  # noqa: F401 (FLIP_SEARCH: re-exported)
from gexhistory.engine.segments import expand, lengths_to_starts, seg_argmax, seg_min, seg_sum

GEX_UNIT = "usd_per_1pct_move"
ATM_IV_DAYS = 30.0

POSITIVE, NEGATIVE, NEUTRAL = "POSITIVE", "NEGATIVE", "NEUTRAL"
LONG_GAMMA, SHORT_GAMMA = "LONG_GAMMA", "SHORT_GAMMA"


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


@dataclass
class _Snaps:
    """The snapshots of one call: `session` of each, and what the engine needs of its moment."""

    session: np.ndarray  # index into the book's sessions
    spot: np.ndarray
    at_ts: np.ndarray  # POSIX seconds
    day: np.ndarray  # the snapshot's date, days since 1970-01-01
    week_end: np.ndarray  # that week's Friday, same unit

    @classmethod
    def of(cls, spots: list, times: list[list[dt.datetime]]) -> "_Snaps":
        flat = [t for ts in times for t in ts]
        days = np.array([t.toordinal() for t in flat], dtype=np.int64) - _EPOCH_ORDINAL
        return cls(np.repeat(np.arange(len(times)), [len(ts) for ts in times]),
                   np.concatenate([np.asarray(s, dtype=float).reshape(len(ts)) for s, ts in zip(spots, times)]
                                  or [np.zeros(0)]),
                   np.array([t.timestamp() for t in flat], dtype=float), days,
                   days + np.array([4 - t.weekday() for t in flat], dtype=np.int64))


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


# Sessions per pass: as many as hold about CHUNK_PAIRS (contract, snapshot) pairs, enough to amortise
# numpy's per-call cost and few enough for the cache (a backfill's modelled sessions: ~48 per pass; a
# market-wide chain file's: hundreds of small chains per pass, a large one alone).
CHUNK_PAIRS = 120_000


def compute_gex(chains: Sequence[OptionChain], spots: Sequence, times: Sequence[Sequence[dt.datetime]],
                conv: Conventions | None = None, *, with_flip: bool | Sequence[bool] = True) -> list[list[GexSnapshot]]:
    """The GEX snapshots of many sessions: the one entry point every stored and shown GEX number uses.

    Parameters
    ----------
    chains : sequence of OptionChain
        One chain per session (open interest is published once a day).
    spots : sequence of float or array-like
        Per session, the underlying price at each of its snapshots (a float for one snapshot).
    times : sequence of sequences of datetime
        Per session, each snapshot's time (tz-aware); time to expiry runs from it to each expiry's close.
    conv : Conventions, optional
        r, q, DTE window, gamma source, flip search range, neutral band (default Conventions()).
    with_flip : bool or sequence of bool, keyword-only
        Search the flip point (one flag, or one per session). Without it flip_point is None and
        mm_state follows the sign of net GEX.

    Returns
    -------
    list of list of GexSnapshot
        Per session, one snapshot per time, in the order given.

    Sessions go through the engine about CHUNK_PAIRS (contract, snapshot) pairs at a time; a session's
    numbers are the same whatever other sessions share its call or its chunk.
    """
    conv = conv or Conventions()
    n = len(chains)
    if len(spots) != n or len(times) != n:
        raise ValueError(f"compute_gex: {n} chains, {len(spots)} spot lists and {len(times)} time lists")
    flags = np.broadcast_to(np.asarray(with_flip, dtype=bool), (n,))
    out: list[list[GexSnapshot]] = []
    pairs = np.cumsum([len(c) * max(1, len(ts)) for c, ts in zip(chains, times)])
    lo = 0
    while lo < n:
        done = pairs[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(pairs, done + CHUNK_PAIRS, side="right")))
        book = ChainBook.of(list(chains[lo:hi]), vendor=conv.gamma_source == "vendor")
        snaps = _Snaps.of(spots[lo:hi], times[lo:hi])
        flat = _exposures(book, snaps, conv, flags[lo:hi]).snapshots(conv)
        j = 0
        for ts in times[lo:hi]:
            out.append(flat[j:j + len(ts)])
            j += len(ts)
        lo = hi
    return out


def compute_gex_one(chain: OptionChain, spot: float, at: dt.datetime, conv: Conventions | None = None, *,
                    with_flip: bool = True) -> GexSnapshot:
    """compute_gex for one chain at one spot and time: everything gexhistory stores about a snapshot."""
    return compute_gex([chain], [[spot]], [[at]], conv, with_flip=with_flip)[0][0]


@dataclass
class _Pairs:
    """Per (snapshot, position) pair, snapshot-major and, within a snapshot, expiry run by run; and per
    (snapshot, expiry run) what every position of the run shares at that moment."""

    pos: np.ndarray  # position index in the book
    start: np.ndarray  # (J+1,) each snapshot's pairs
    run: np.ndarray  # per snapshot run: the book's run
    run_owner: np.ndarray  # per snapshot run: the snapshot
    run_start: np.ndarray  # (J+1,) each snapshot's runs
    run_pairs: np.ndarray  # (SR+1,) each snapshot run's pairs
    run_t: np.ndarray  # years to the expiry close (<= 0: expired)
    run_keep: np.ndarray  # alive and inside the DTE window
    tt: np.ndarray  # per pair: t floored at one minute (1 where expired: unused there)
    disc: np.ndarray  # per pair: e^{-q tt}
    vst: np.ndarray  # per pair: iv * sqrt(tt)
    d1: np.ndarray
    e0: np.ndarray  # per pair: exp(-d1^2 / 2), the profile's kernel at spot
    alive: np.ndarray  # per pair
    call_oi: np.ndarray | None = None  # per pair, once gathered
    put_oi: np.ndarray | None = None


def _pairs(book: ChainBook, s: _Snaps, conv: Conventions) -> _Pairs:
    run, run_owner = expand(book.session_runs, s.session)
    run_start = lengths_to_starts(np.diff(book.session_runs)[s.session])
    size = np.diff(book.run_start)[run]
    run_pairs = lengths_to_starts(size)
    pos, _ = expand(book.run_start, run)
    start = lengths_to_starts(np.diff(book.start)[s.session])
    # What a run shares at a snapshot is computed once per run, then repeated over its positions.
    t = (book.run_close[run] - s.at_ts[run_owner]) / SECONDS_PER_YEAR
    alive = t > 0
    tt_run = np.maximum(np.where(alive, t, 1.0), MIN_T_YEARS)
    tt = np.repeat(tt_run, size)
    iv = np.take(book.iv, pos)  # np.take: numpy's fastest gather, well ahead of fancy indexing
    with np.errstate(divide="ignore", invalid="ignore"):
        vst = iv * np.repeat(np.sqrt(tt_run), size)
        log_m = np.repeat(np.log(s.spot)[run_owner], size) - np.take(np.log(book.strike), pos)
        d = d1(log_m, tt, iv, vst, conv.r, conv.q, out=log_m)
        e0 = gaussian(d)
    return _Pairs(pos, start, run, run_owner, run_start, run_pairs, t,
                  alive & (t <= (conv.dte_window + 1) / 365.0), tt, np.repeat(np.exp(-conv.q * tt_run), size),
                  vst, d, e0, np.repeat(alive, size))


@dataclass
class _Result:
    """Flat per-snapshot figures of one call, and per-snapshot runs of strikes."""

    spot: np.ndarray
    call_gex: np.ndarray
    put_gex: np.ndarray
    flip: np.ndarray  # NaN: none found (or not searched)
    call_wall: np.ndarray  # NaN: none
    put_wall: np.ndarray
    atm_iv: np.ndarray  # NaN: none
    call_oi: np.ndarray
    put_oi: np.ndarray
    zero_dte: np.ndarray
    this_week: np.ndarray
    next_week: np.ndarray
    max_pain: np.ndarray
    kstart: np.ndarray  # (J+1,) each snapshot's run in the three arrays below
    strikes: np.ndarray
    call_by_k: np.ndarray
    put_by_k: np.ndarray

    def snapshots(self, conv: Conventions) -> list[GexSnapshot]:
        """Every snapshot as a GexSnapshot (NaN becomes None), converted column by column."""
        opt = lambda a: [None if v != v else v for v in a.tolist()]  # noqa: E731 - NaN means None
        with np.errstate(all="ignore"):
            pcr = np.where(self.call_oi > 0, self.put_oi / np.where(self.call_oi > 0, self.call_oi, 1.0), np.nan)
        cols = zip(self.spot.tolist(), self.call_gex.tolist(), self.put_gex.tolist(), opt(self.flip),
                   opt(self.call_wall), opt(self.put_wall), opt(self.atm_iv), opt(pcr), self.zero_dte.tolist(),
                   self.this_week.tolist(), self.next_week.tolist(), opt(self.max_pain), self.kstart[:-1].tolist(),
                   self.kstart[1:].tolist())
        band = conv.neutral_band
        return [GexSnapshot(spot, call + put, call, put, flip, flip is not None, cw, pw, iv, ratio, zero, week, nxt,
                            pain, classify_regime(call + put, call - put, band), mm_state_for(spot, flip, call + put),
                            self.strikes[lo:hi], self.call_by_k[lo:hi], self.put_by_k[lo:hi])
                for spot, call, put, flip, cw, pw, iv, ratio, zero, week, nxt, pain, lo, hi in cols]


def _exposures(book: ChainBook, s: _Snaps, conv: Conventions, flip_sessions: np.ndarray) -> _Result:
    p = _pairs(book, s, conv)
    pos = p.pos
    size = np.diff(p.run_pairs)
    # A position without open interest has zero call and put OI, so its dollars are zero: only the
    # run's window decides what counts.
    keep = np.repeat(p.run_keep, size)
    with np.errstate(all="ignore"):
        gamma = gamma_from_parts(p.e0, p.disc, np.repeat(s.spot[p.run_owner], size) * p.vst)
    if book.own.any():
        gamma = np.where(np.take(book.own, pos), np.take(book.vendor_gamma, pos), gamma)
    gamma *= np.repeat((book.multiplier[s.session] * s.spot * s.spot * 0.01)[p.run_owner], size)  # $ per 1% move
    finite = _finite(book)
    p.call_oi, p.put_oi = np.take(book.call_oi, pos), np.take(book.put_oi, pos)
    with np.errstate(all="ignore"):
        call_d = _masked(gamma * p.call_oi, keep, finite)
        put_d = _masked(gamma * p.put_oi, keep, finite)

    # Per-strike sums and walls: each snapshot's run of its session's strikes.
    kstart = lengths_to_starts(np.diff(book.strike_start)[s.session])
    bins = np.repeat(kstart[:-1], np.diff(p.start)) + np.take(book.strike_index, pos)
    total_k = int(kstart[-1])
    call_by_k = np.bincount(bins, call_d, total_k)
    put_by_k = -np.bincount(bins, put_d, total_k)
    kidx, kowner = expand(book.strike_start, s.session)
    strikes = book.strikes[kidx]
    kspot = s.spot[kowner]
    cw = seg_argmax(np.where((strikes >= kspot) & (call_by_k > 0), call_by_k, -np.inf), kstart)
    pw = seg_argmax(np.where((strikes <= kspot) & (put_by_k < 0), -put_by_k, -np.inf), kstart)

    # Everything else sums per (snapshot, expiry run) first: a run has one expiry date.
    run_call = seg_sum(call_d, p.run_pairs)
    run_put = seg_sum(put_d, p.run_pairs)
    gross = run_call + run_put
    day = book.run_day[p.run]
    week_end = s.week_end[p.run_owner]
    per_snap = lambda x: seg_sum(x, p.run_start)  # noqa: E731
    keep_oi = p.run_keep  # a run's OI sums count open contracts only
    return _Result(
        spot=s.spot, call_gex=per_snap(run_call), put_gex=-per_snap(run_put),
        flip=_flips(book, s, conv, flip_sessions, p),
        call_wall=_pick(strikes, cw), put_wall=_pick(strikes, pw),
        atm_iv=_atm_iv(book, s, p),
        call_oi=per_snap(np.where(keep_oi, book.run_call_oi[p.run], 0.0)),
        put_oi=per_snap(np.where(keep_oi, book.run_put_oi[p.run], 0.0)),
        zero_dte=per_snap(np.where(day == s.day[p.run_owner], gross, 0.0)),
        this_week=per_snap(np.where(day <= week_end, gross, 0.0)),
        next_week=per_snap(np.where((day > week_end) & (day <= week_end + 7), gross, 0.0)),
        max_pain=_max_pain(book, p),
        kstart=kstart, strikes=strikes, call_by_k=call_by_k, put_by_k=put_by_k,
    )


def _finite(book: ChainBook) -> bool:
    """Every position's gamma and flip terms are finite numbers (positive finite strikes and IVs, no
    vendor gamma): then masking by multiplication is exact, and several times cheaper than np.where."""
    return bool(not book.own.any() and np.isfinite(book.iv).all() and (book.iv > 0).all()
                and np.isfinite(book.strike).all() and (book.strike > 0).all())


def _masked(values: np.ndarray, mask: np.ndarray, finite: bool) -> np.ndarray:
    """values where mask, else 0 (NaN and infinities outside the mask too, when not `finite`)."""
    return values * mask if finite else np.where(mask, values, 0.0)


def _pick(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = np.full(idx.size, np.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def _flips(book: ChainBook, s: _Snaps, conv: Conventions, flip_sessions: np.ndarray, p: _Pairs) -> np.ndarray:
    """Flip per snapshot. A session's positions are those live at one of its snapshots and inside the
    DTE window at another, calls' OI minus puts' OI; a session with none has no flip at all."""
    n = s.spot.size
    out = np.full(n, np.nan)
    rseg = book.run_session
    at_min = np.full(book.n_sessions, np.inf)
    at_max = np.full(book.n_sessions, -np.inf)
    np.minimum.at(at_min, s.session, s.at_ts)
    np.maximum.at(at_max, s.session, s.at_ts)
    run_ok = ((book.run_close > at_min[rseg])
              & (book.run_close - at_max[rseg] <= (conv.dte_window + 1) * SECONDS_PER_YEAR / 365.0)
              & flip_sessions[rseg])
    weight = book.call_oi - book.put_oi
    usable = (weight != 0) & np.repeat(run_ok, np.diff(book.run_start))  # weight != 0: some OI is open
    solve = np.flatnonzero(np.bincount(book.session[usable], minlength=book.n_sessions)[s.session] > 0)
    if solve.size == 0:
        return out
    # Every pair keeps its place; a pair that is not a flip position (or has expired) weighs zero, so a
    # snapshot's sums run over the same elements whatever else shares the chunk.
    if p.call_oi is None:
        p.call_oi, p.put_oi = np.take(book.call_oi, p.pos), np.take(book.put_oi, p.pos)
    pair_weight = p.call_oi - p.put_oi
    take = np.repeat(run_ok[p.run], np.diff(p.run_pairs)) & (pair_weight != 0) & p.alive
    finite = _finite(book)
    with np.errstate(all="ignore"):
        slope = _masked(1.0 / p.vst, take, finite)
        coef = pair_weight * p.disc * slope * INV_SQRT_2PI
        d1 = _masked(p.d1, take, finite)
    whole = solve.size == n
    at_spot = seg_sum(coef * p.e0, p.start)[solve]  # the profile at spot, from the kernel gamma used
    profiles = Profiles(p.start, d1, slope, coef)
    if not whole:
        profiles = profiles.rows(solve)

    def textbook(j: int) -> TextbookProfile:
        lo, hi = p.start[solve[j]], p.start[solve[j] + 1]
        keep = take[lo:hi]
        g = p.pos[lo:hi][keep]
        return TextbookProfile(book.strike[g], p.tt[lo:hi][keep], book.iv[g], weight[g], conv.r, conv.q)

    out[solve] = solve_flips(profiles, s.spot[solve], conv.flip_search, textbook, at_spot)
    return out


def _atm_iv(book: ChainBook, s: _Snaps, p: _Pairs) -> np.ndarray:
    """30-day ATM IV per snapshot: per live expiry the IV at the strike nearest spot (mean of the
    contracts there), interpolated linearly in total variance; the nearest expiry's or the last one's
    outside the expiries' span."""
    n = s.spot.size
    out = np.full(n, np.nan)
    vol, count = book.atm.nearest_mean_iv(p.run, s.spot[p.run_owner])
    valid = np.flatnonzero(p.run_keep & (count > 0))
    t, vol, who = p.run_t[valid], vol[valid], p.run_owner[valid]
    vstart = lengths_to_starts(np.bincount(who, minlength=n))
    target = ATM_IV_DAYS / 365.0
    big = t.size
    hi = seg_min(np.where(t >= target, np.arange(t.size), big), vstart, empty=big).astype(np.intp)
    has = vstart[1:] > vstart[:-1]
    first, last = vstart[:-1], vstart[1:] - 1
    at_first = has & (hi == first)
    beyond = has & (hi == big)
    between = has & ~at_first & ~beyond
    out[at_first] = vol[hi[at_first]]
    out[beyond] = vol[last[beyond]]
    h = hi[between]
    lo = h - 1
    w_lo, w_hi = vol[lo] ** 2 * t[lo], vol[h] ** 2 * t[h]
    out[between] = np.sqrt((w_lo + (w_hi - w_lo) * (target - t[lo]) / (t[h] - t[lo])) / target)
    return out


def _max_pain(book: ChainBook, p: _Pairs) -> np.ndarray:
    """Per snapshot, for its nearest live expiry (the first live run with an open contract): the
    strike that minimises the intrinsic value paid to holders (engine/book.py)."""
    n = p.run_start.size - 1
    out = np.full(n, np.nan)
    live = p.run_keep & book.run_open[p.run]
    first = seg_min(np.where(live, np.arange(p.run.size), p.run.size), p.run_start, empty=p.run.size).astype(np.intp)
    has = first < p.run.size
    runs, inverse = np.unique(p.run[first[has]], return_inverse=True)
    out[has] = max_pain(book, runs)[inverse]
    return out
