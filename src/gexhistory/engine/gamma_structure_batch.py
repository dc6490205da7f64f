"""gamma_structure.signal_structure for many sessions in one vectorised pass (the backfill's signal step).

Each session's values are, to the last bit, those of the scalar functions in gamma_structure.py (the
readable reference): the same Black-Scholes dollar gamma per contract, the same (expiry, strike)
matrix per session, reduced in the same order. That also makes a session's values independent of the
other sessions computed with it, as resumed runs need. The matrices of a chunk of sessions form one
(session, expiry, strike) array, zero-padded to the chunk's largest matrix; the reductions reproduce
numpy's own order:

- ndarray.sum(axis=0) of an (expiries, strikes) matrix adds the rows one after the other, and so does
  .sum(axis=1) of the 3-D array per session, the zero padding changing nothing (x + 0.0 == x); with a
  single strike numpy sums the lone column like a 1-D array instead;
- a 1-D or contiguous ndarray.sum() is numpy's pairwise summation, which depends on the number of
  terms, padding included: those sums take exactly the matrix's own cells, each session's behind a
  leading 0.0 for np.add.reduceat (which would otherwise seed the sum with the first term).

Sessions go in chunks of about CHUNK_CONTRACTS contracts, which keeps the temporaries in cache; a
chunk only groups work, every reduction stays inside one session. A session whose dollar gamma is not
finite (an imported chain with a missing IV) takes the reference path, which defines what NaN does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.gamma_structure import (MAGNET_MIN_DTE, NEXT_DTE, SIGNIFICANT_QUANTILE, SOON_DTE, Magnets,
                                               SignalStructure, SignalWalls, WallExpiry, is_monthly_expiry,
                                               signal_structure)
from gexhistory.engine.greeks import SECONDS_PER_YEAR, bs_gamma, dollar_gamma_per_pct

CHUNK_CONTRACTS = 1 << 16
_Q = np.true_divide(SIGNIFICANT_QUANTILE, 100)  # the q np.percentile derives from it
NAT = np.datetime64("NaT", "D")

# Column name -> (part of SignalStructure, attribute); dates are datetime64[D] columns, the rest float.
_COLUMNS = {
    "call_wall": ("walls", "call_above"), "call_wall_gamma": ("walls", "call_above_gamma"),
    "put_wall": ("walls", "put_below"), "put_wall_gamma": ("walls", "put_below_gamma"),
    "call_wall_any": ("walls", "call_nearest"), "put_wall_any": ("walls", "put_nearest"),
    "call_soon_ratio": ("call_expiry", "soon_ratio"), "call_next_ratio": ("call_expiry", "next_ratio"),
    "call_first_expiry": ("call_expiry", "first_expiry"), "call_first_dte": ("call_expiry", "first_dte"),
    "put_soon_ratio": ("put_expiry", "soon_ratio"), "put_next_ratio": ("put_expiry", "next_ratio"),
    "put_first_expiry": ("put_expiry", "first_expiry"), "put_first_dte": ("put_expiry", "first_dte"),
    "magnet_expiry": ("magnets", "expiry"), "magnet_above": ("magnets", "above"),
    "magnet_above_strength": ("magnets", "above_strength"), "magnet_below": ("magnets", "below"),
    "magnet_below_strength": ("magnets", "below_strength"), "net_this_week": (None, "net_this_week"),
}
_DATES = ("call_first_expiry", "put_first_expiry", "magnet_expiry")
_INTS = ("call_first_dte", "put_first_dte")
_NEVER_NONE = ("call_wall_gamma", "put_wall_gamma", "call_soon_ratio", "call_next_ratio", "put_soon_ratio",
                   "put_next_ratio", "net_this_week")


class SignalStructures:
    """signal_structure's values for n sessions as columns (arrays of length n); NaN / NaT where the
    scalar result has None. `structure(j)` gives session j's SignalStructure back."""

    def __init__(self, n: int):
        for name in _COLUMNS:
            if name in _DATES:
                col = np.full(n, NAT)
            else:
                col = np.zeros(n) if name in _NEVER_NONE else np.full(n, np.nan)
            setattr(self, name, col)

    def __len__(self) -> int:
        return self.call_wall.size

    def set(self, j: int, st: SignalStructure) -> None:
        for name, (part, attr) in _COLUMNS.items():
            v = getattr(st if part is None else getattr(st, part), attr)
            getattr(self, name)[j] = (NAT if name in _DATES else np.nan) if v is None else v

    def value(self, name: str, j: int):
        """Column `name` of session j as the scalar functions give it (None, float, int or date)."""
        v = getattr(self, name)[j]
        if name in _DATES:
            return None if np.isnat(v) else v.astype(dt.date)
        if np.isnan(v) and name not in _NEVER_NONE:
            return None
        return int(v) if name in _INTS else float(v)

    def structure(self, j: int) -> SignalStructure:
        parts: dict[str, dict] = {"walls": {}, "call_expiry": {}, "put_expiry": {}, "magnets": {}}
        for name, (part, attr) in _COLUMNS.items():
            if part is not None:
                parts[part][attr] = self.value(name, j)
        return SignalStructure(SignalWalls(**parts["walls"]), WallExpiry(**parts["call_expiry"]),
                               WallExpiry(**parts["put_expiry"]), Magnets(**parts["magnets"]),
                               self.value("net_this_week", j))


def signal_structures(chains: list[OptionChain], spots, closes: list[dt.datetime], dte_window: int = 60,
                      r: float = 0.04, q: float = 0.013) -> SignalStructures:
    """signal_structure(chains[j], spots[j], closes[j], ...) for every j, in one pass per chunk."""
    n = len(chains)
    spots = np.asarray(spots, dtype=float).reshape(n)
    out = SignalStructures(n)
    sizes = np.array([len(c) for c in chains], dtype=np.int64)
    lo = 0
    while lo < n:
        hi = lo + max(1, int(np.searchsorted(np.cumsum(sizes[lo:]), CHUNK_CONTRACTS, side="right")))
        _chunk(out, lo, chains[lo:hi], spots[lo:hi], closes[lo:hi], dte_window, r, q)
        lo = hi
    return out


def _chunk(out: SignalStructures, lo: int, chains: list[OptionChain], spots: np.ndarray, closes: list[dt.datetime],
           dte_window: int, r: float, q: float) -> None:
    m = len(chains)
    sizes = np.fromiter(map(len, chains), np.intp, m)
    seg = np.repeat(np.arange(m), sizes)
    t = np.concatenate([c.expiry_close for c in chains])
    t -= np.array([c.timestamp() for c in closes])[seg]
    t /= SECONDS_PER_YEAR
    oi = np.concatenate([c.open_interest for c in chains])
    keep = t > 0
    keep &= t <= (dte_window + 1) / 365.0
    keep &= oi > 0
    idx = None if keep.all() else np.flatnonzero(keep)

    def kept(a):
        a = np.concatenate(a) if isinstance(a, list) else a
        return a if idx is None else a[idx]

    seg, t, oi = kept(seg), kept(t), kept(oi)
    k, iv, is_call = kept([c.strike for c in chains]), kept([c.iv for c in chains]), kept([c.is_call for c in chains])
    day = kept([np.asarray(c.expiry, dtype="datetime64[D]") for c in chains]).view(np.int64)
    mults = {float(c.multiplier) for c in chains}
    mult = mults.pop() if len(mults) == 1 else kept(np.repeat([float(c.multiplier) for c in chains], sizes))
    s = spots[seg]
    with np.errstate(all="ignore"):
        dollars = dollar_gamma_per_pct(bs_gamma(s, k, t, iv, r, q), oi, s, mult)
    bad = ~np.isfinite(spots)
    nat = np.iinfo(np.int64).min
    if not np.isfinite(dollars).all() or (day.size and day.min() == nat):
        bad[seg[~np.isfinite(dollars) | (day == nat)]] = True
    if bad.any():
        good = ~bad[seg]
        seg, k, day, is_call, dollars = seg[good], k[good], day[good], is_call[good], dollars[good]
    if seg.size:
        today = np.array([c.date() for c in closes], dtype="datetime64[D]").view(np.int64)
        _fill(out, lo, _Blocks.of(m, seg, k, day - today[seg], is_call, dollars), spots, today)
    for j in np.flatnonzero(bad):
        out.set(lo + j, signal_structure(chains[j], float(spots[j]), closes[j], dte_window, r, q))


@dataclass
class _Blocks:
    """The chunk's (session, expiry, strike) dollar gamma: session i's gamma_structure matrices are
    call[i, :n_e[i], :n_k[i]] and -put[i, :n_e[i], :n_k[i]]; zeros beyond."""

    call: np.ndarray  # >= 0
    put: np.ndarray  # |put gamma|, >= 0 (gamma_structure stores it negated)
    n_e: np.ndarray
    n_k: np.ndarray
    strikes: np.ndarray  # (sessions, max n_k) ascending
    dte: np.ndarray  # (sessions, max n_e) calendar days, ascending

    @classmethod
    def of(cls, m: int, seg, k, dte, is_call, dollars) -> "_Blocks":
        kvals, kcode = _strike_codes(k)
        dvals = np.arange(dte.min(), dte.max() + 1)
        if dvals.size * m > 1 << 22:  # far-flung expiry dates: number the distinct ones instead
            dvals, dcode = np.unique(dte, return_inverse=True)
        else:
            dcode = dte - dvals[0]
        k_flat, e_flat = seg * kvals.size + kcode, seg * dvals.size + dcode
        k_rank, n_k, k_present = _ranks(k_flat, m, kvals.size)
        e_rank, n_e, e_present = _ranks(e_flat, m, dvals.size)
        width_e, width_k = int(n_e.max()), int(n_k.max())
        row = (np.arange(m)[:, None] * width_e + e_rank) * width_k  # where each (session, expiry) row starts
        cell = row.ravel()[e_flat] + k_rank.ravel()[k_flat]
        # Calls and puts interleaved; each cell adds its contracts in chain order, as gamma_structure's
        # np.bincount does.
        both = np.bincount(2 * cell + ~is_call, dollars, 2 * m * width_e * width_k).reshape(m, width_e, width_k, 2)
        return cls(both[..., 0], both[..., 1], n_e, n_k, _table(k_present, k_rank, width_k, kvals),
                   _table(e_present, e_rank, width_e, dvals))

    @property
    def valid_k(self) -> np.ndarray:
        return np.arange(self.strikes.shape[1]) < self.n_k[:, None]

    @property
    def valid_e(self) -> np.ndarray:
        return np.arange(self.dte.shape[1]) < self.n_e[:, None]

    def by_strike(self, cells: np.ndarray) -> np.ndarray:
        """(sessions, max n_k): each strike's cells summed over expiries as gamma_structure sums them."""
        out = cells.sum(axis=1)
        lone = self.n_k == 1  # numpy sums a one-strike matrix's column pairwise
        out[lone, 0] = _masked_sums(cells[lone, :, 0], self.valid_e[lone])
        return out


def _strike_codes(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(k, return_inverse=True) without a sort when the strikes lie on a 1/8 grid of moderate
    span (listed strikes do): grid points are exact in binary, so the strikes come back unchanged."""
    grid = k * 8.0
    lo, hi = grid.min(), grid.max()
    if hi - lo < 1 << 22 and np.array_equal(grid, np.floor(grid)):
        at = (grid - lo).astype(np.intp)
        used = np.zeros(int(hi - lo) + 1, dtype=bool)
        used[at] = True
        return (np.flatnonzero(used) + lo) / 8.0, (np.cumsum(used) - 1)[at]
    return np.unique(k, return_inverse=True)


def _ranks(flat: np.ndarray, m: int, width: int):
    """flat = session * width + code per contract. Returns the (sessions, width) table of each code's
    rank among its session's distinct codes, how many each session has, and which are present."""
    present = np.zeros((m, width), dtype=bool)
    present.ravel()[flat] = True
    rank = np.cumsum(present, axis=1) - 1
    return rank, rank[:, -1] + 1, present


def _table(present: np.ndarray, rank: np.ndarray, width: int, values: np.ndarray) -> np.ndarray:
    """(sessions, width): each session's distinct values in ascending order (0 past its count)."""
    table = np.zeros((present.shape[0], width), dtype=values.dtype)
    r, c = np.nonzero(present)
    table[r, rank[r, c]] = values[c]
    return table


def _fill(out: SignalStructures, lo: int, b: _Blocks, spots: np.ndarray, today: np.ndarray) -> None:
    """Every column of `out` for the chunk's sessions lo.. (today: days since 1970)."""
    m = b.n_k.size
    s = spots[:, None]
    sl = slice(lo, lo + m)
    rows = np.arange(m)
    call_by, put_by = b.by_strike(b.call), -b.by_strike(b.put)
    sig_c, sig_p = _significant(call_by, b.valid_k), _significant(put_by, b.valid_k)
    above, has_above = _first_min(sig_c & (b.strikes > s), b.strikes - s)
    below, has_below = _first_min(sig_p & (b.strikes < s), s - b.strikes)
    near_c, has_near_c = _first_min(sig_c, np.abs(b.strikes - s))
    near_p, has_near_p = _first_min(sig_p, np.abs(b.strikes - s))
    out.call_wall[sl] = np.where(has_above, b.strikes[rows, above], np.nan)
    out.call_wall_gamma[sl] = np.where(has_above, call_by[rows, above], 0.0)
    out.put_wall[sl] = np.where(has_below, b.strikes[rows, below], np.nan)
    out.put_wall_gamma[sl] = np.where(has_below, put_by[rows, below], 0.0)
    out.call_wall_any[sl] = np.where(has_near_c, b.strikes[rows, near_c], np.nan)
    out.put_wall_any[sl] = np.where(has_near_p, b.strikes[rows, near_p], np.nan)

    days = (today[:, None] + b.dte).astype("datetime64[D]")
    for side, cells, has, col in (("call", b.call, has_above, above), ("put", b.put, has_below, below)):
        w = np.flatnonzero(has)
        _wall_expiry(out, side, lo + w, cells[w, :, col[w]], b.valid_e[w], b.dte[w], days[w])
    _magnets(out, lo, b, days, s)
    to_friday = 4 - (today + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    this_week = (b.valid_e & (b.dte <= to_friday[:, None]))[:, :, None] & b.valid_k[:, None, :]
    out.net_this_week[sl] = _masked_sums(b.call - b.put, this_week)


def _significant(by_strike: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row, the strikes whose |gamma| reaches np.percentile(|live gamma|, 80), live = non-zero
    (numpy's linear method step by step: its virtual index, neighbours and _lerp)."""
    a = np.abs(by_strike)
    live = valid & (by_strike != 0)
    count = live.sum(axis=1)
    ordered = np.sort(np.where(live, a, np.inf), axis=1)
    vi = (count - 1) * _Q
    prev = np.floor(vi)
    top = vi >= count - 1  # numpy takes the largest value there
    i_lo = np.where(top, count - 1, prev).clip(0).astype(np.intp)[:, None]
    i_hi = np.where(top, count - 1, prev + 1).clip(0).astype(np.intp)[:, None]
    a_lo = np.take_along_axis(ordered, i_lo, axis=1)[:, 0]
    a_hi = np.take_along_axis(ordered, i_hi, axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        t = vi - prev
        diff = a_hi - a_lo
        cut = np.where(t >= 0.5, a_hi - diff * (1 - t), a_lo + diff * t)
        return live & (a >= cut[:, None])


def _first_min(mask: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first column with the smallest d among mask (np.argmin over the subset), and
    whether there is one."""
    return np.argmin(np.where(mask, d, np.inf), axis=1), mask.any(axis=1)


def _wall_expiry(out: SignalStructures, side: str, at: np.ndarray, g: np.ndarray, valid_e, dte, days) -> None:
    """wall_expiry for the sessions `at` with a wall: g is the wall strike's |gamma| per expiry."""
    if at.size == 0:
        return
    total = _masked_sums(g, valid_e)
    soon_e = valid_e & (dte <= SOON_DTE)
    soon = _masked_sums(g, soon_e)
    nxt = _masked_sums(g, valid_e & (dte >= NEXT_DTE[0]) & (dte <= NEXT_DTE[1]))
    held = soon_e & (g > 0)
    first = np.argmax(held, axis=1)
    ok = total > 0
    has_first = ok & held.any(axis=1)
    rows = np.arange(at.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        getattr(out, f"{side}_soon_ratio")[at] = np.where(ok, soon / total, 0.0)
        getattr(out, f"{side}_next_ratio")[at] = np.where(ok, nxt / total, 0.0)
    getattr(out, f"{side}_first_expiry")[at] = np.where(has_first, days[rows, first], NAT)
    getattr(out, f"{side}_first_dte")[at] = np.where(has_first, dte[rows, first], np.nan)


def _magnets(out: SignalStructures, lo: int, b: _Blocks, days, s) -> None:
    """monthly_magnets: the first standard monthly expiry >= 7 days out; per side of spot the strike with
    its largest gross gamma, as a share of the largest per-strike gross gamma of the whole chain."""
    monthly = b.valid_e & is_monthly_expiry(days) & (b.dte >= MAGNET_MIN_DTE)
    w = np.flatnonzero(monthly.any(axis=1) & (b.n_k > 0))
    if w.size == 0:
        return
    e = np.argmax(monthly[w], axis=1)
    gross = b.call[w, e] + b.put[w, e]  # call - put of the monthly expiry, put stored as |put|
    peak = np.max(np.where(b.valid_k[w], b.by_strike(b.call + b.put)[w], -np.inf), axis=1)
    at = lo + w
    out.magnet_expiry[at] = days[w, e]
    strikes, rows = b.strikes[w], np.arange(w.size)
    for name, side in (("above", strikes > s[w]), ("below", strikes < s[w])):
        cand = side & (gross > 0) & b.valid_k[w]
        best = np.argmax(np.where(cand, gross, -np.inf), axis=1)
        ok = cand.any(axis=1) & (peak > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            strength = np.minimum(100.0, 100.0 * gross[rows, best] / peak)
        getattr(out, f"magnet_{name}")[at] = np.where(ok, strikes[rows, best], np.nan)
        getattr(out, f"magnet_{name}_strength")[at] = np.where(ok, strength, np.nan)


def _masked_sums(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per leading index i, values[i][mask[i]].sum(): the picked terms in C order, added exactly as
    ndarray.sum adds them (pairwise), each row's copied behind a 0.0 and reduced with np.add.reduceat."""
    if mask.shape[0] == 0:
        return np.zeros(0)
    n = mask.reshape(mask.shape[0], -1).sum(axis=1)
    picked = values[mask]
    buf = np.zeros(picked.size + n.size)
    buf[np.arange(picked.size) + np.repeat(np.arange(1, n.size + 1), n)] = picked
    return np.add.reduceat(buf, np.cumsum(n + 1) - (n + 1))
