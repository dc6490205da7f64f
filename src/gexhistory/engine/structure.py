"""What the signals read from a session's close chain (docs/computation.md), for many sessions in one vectorised pass.

Per session: the Black-Scholes dollar gamma of every contract live within the DTE window (greeks.py:
gamma x OI x multiplier x S^2 x 0.01, calls +, puts -), laid out per (expiry, strike), and from it
- the walls: per strike summed over expirations, the significant strikes of each side (the top 20% by
  |gamma|, np.percentile's linear method), the nearest significant call above spot and put below it,
  and the nearest of each side on either side of spot;
- how each wall's gamma splits over time to expiry (within 5 days, 6-14 days, the first expiry within
  5 days holding gamma there);
- the monthly magnets: the next standard monthly expiry at least 7 days out and, on each side of spot,
  the strike holding its largest gross gamma, with its strength (that gamma as a percentage, capped at
  100, of the chain's largest per-strike gross gamma);
- the net gamma expiring by this Friday.
DTE is calendar days from the session date to the expiry date: at the close snapshot the day's own
expiry has expired, so it holds no gamma there.

The values are those of a plain per-session reading written with numpy's own reductions
(tests/reference_structure.py), to the last bit: the same dollar gamma per contract, the same (expiry,
strike) matrices per session, reduced in the same order. That also makes a session's values independent
of the other sessions computed with it, as resumed runs need. The matrices of a chunk of sessions form
one (session, expiry, strike, call/put) array, zero-padded to the chunk's largest matrix, filled by one
np.bincount (which adds a cell's contracts in chain order); the reductions reproduce numpy's order:

- ndarray.sum(axis=0) of an (expiries, strikes) matrix adds the rows one after the other, and so does
  .sum(axis=1) of the 3-D array per session, the zero padding changing nothing (x + 0.0 == x); with a
  single strike numpy sums the lone column like a 1-D array instead;
- a 1-D or contiguous ndarray.sum() is numpy's pairwise summation, which depends on the number of
  terms, padding included: those sums take exactly the matrix's own cells, each session's behind a
  leading 0.0 for np.add.reduceat (which would otherwise seed the sum with the first term).

What a missing number does is defined as numpy defines it for one session: a NaN dollar gamma (an
imported contract without a usable IV, a NaN spot) makes its strike's sums NaN and np.percentile NaN,
so that side has no significant strike; an expiry without a date (NaT) sorts last, counts as expiring
"soon" (its DTE is the int64 minimum, as NaT - date converts) and never as this week's or a monthly.

Sessions go in chunks of about CHUNK_CONTRACTS contracts: a chunk only groups work, every reduction
stays inside one session. Larger chunks pay less fixed cost per session but more for their per-contract
temporaries, which glibc maps fresh (page faults) above 128 KiB; 64k contracts measured best here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.greeks import SECONDS_PER_YEAR, bs_gamma, dollar_gamma_per_pct
from gexhistory.engine.params import Conventions

SIGNIFICANT_QUANTILE = 80.0  # a significant wall is in the top 20% of its side by |gamma|
SOON_DTE = 5  # "expiring within 5 days"
NEXT_DTE = (6, 14)
MAGNET_MIN_DTE = 7  # the monthly magnet is a forward destination, not today's pin


@dataclass
class SignalWalls:
    call_above: float | None  # nearest significant call strike above spot
    call_above_gamma: float
    put_below: float | None  # nearest significant put strike below spot
    put_below_gamma: float
    call_nearest: float | None  # nearest significant call strike on either side
    put_nearest: float | None


@dataclass
class WallExpiry:
    """How a wall strike's gamma (one side) splits over time to expiry."""

    soon_ratio: float  # share expiring within 5 days
    next_ratio: float  # share in 6-14 DTE
    first_expiry: dt.date | None  # the nearest expiry within 5 days holding gamma at the strike
    first_dte: int | None


@dataclass
class Magnets:
    expiry: dt.date | None
    above: float | None
    above_strength: float | None
    below: float | None
    below_strength: float | None


@dataclass
class SignalStructure:
    """Everything the signals read from one session's close chain."""

    walls: SignalWalls
    call_expiry: WallExpiry  # of walls.call_above
    put_expiry: WallExpiry  # of walls.put_below
    magnets: Magnets
    net_this_week: float  # net gamma expiring by this Friday


def is_monthly_expiry(days: np.ndarray) -> np.ndarray:
    """Standard monthly expirations: the third Friday, or the Thursday before it when that Friday is a
    holiday (datetime64[D] in, bool out)."""
    d = np.asarray(days, dtype="datetime64[D]")
    month_start = d.astype("datetime64[M]").astype("datetime64[D]")
    weekday_first = (month_start.astype(int) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    third_friday = month_start + ((4 - weekday_first) % 7 + 14).astype("timedelta64[D]")
    return (d == third_friday) | (d == third_friday - np.timedelta64(1, "D"))


CHUNK_CONTRACTS = 1 << 16
_Q = np.true_divide(SIGNIFICANT_QUANTILE, 100)  # the q np.percentile derives from it
NAT = np.datetime64("NaT", "D")
_NAT_DTE = np.iinfo(np.int64).min  # the DTE of an expiry without a date: NaT - date, as an integer
_LAST = 1 << 62  # where such an expiry sorts among a session's expiries: last, as NaT does (no int64 overflow)

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
    """The SignalStructure of n sessions as columns (arrays of length n); NaN / NaT where a field is
    None. `structure(j)` gives session j's SignalStructure back."""

    def __init__(self, n: int):
        for name in _COLUMNS:
            if name in _DATES:
                col = np.full(n, NAT)
            else:
                col = np.zeros(n) if name in _NEVER_NONE else np.full(n, np.nan)
            setattr(self, name, col)
        self._lists: dict[str, list] | None = None

    def scalars(self, j: int) -> dict:
        """Session j's columns as SignalStructure's fields hold them (None, float, int or date)."""
        if self._lists is None:  # Python values once, not one numpy scalar per call
            self._lists = {name: getattr(self, name).tolist() for name in _COLUMNS}
        out = {}
        for name, col in self._lists.items():
            v = col[j]
            if v is not None and v != v and name not in _NEVER_NONE:  # NaN
                v = None
            out[name] = int(v) if v is not None and name in _INTS else v
        return out

    def structure(self, j: int) -> SignalStructure:
        parts: dict[str, dict] = {"walls": {}, "call_expiry": {}, "put_expiry": {}, "magnets": {}, None: {}}
        for name, v in self.scalars(j).items():
            part, attr = _COLUMNS[name]
            parts[part][attr] = v
        return SignalStructure(SignalWalls(**parts["walls"]), WallExpiry(**parts["call_expiry"]),
                               WallExpiry(**parts["put_expiry"]), Magnets(**parts["magnets"]),
                               parts[None]["net_this_week"])


def signal_structures(chains: list[OptionChain], spots, closes: list[dt.datetime],
                      dte_window: int = Conventions.dte_window, r: float = Conventions.r,
                      q: float = Conventions.q) -> SignalStructures:
    """The SignalStructure of chains[j] at spots[j] and closes[j] (its close snapshot) for every j, the
    contracts live within `dte_window` days counting, gamma at rates r and q (by default the stored GEX's
    Conventions); one pass per chunk."""
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
    """Sessions lo.. of `out`: the contracts that count and their dollar gamma, for all at once."""
    m = len(chains)
    sizes = np.fromiter(map(len, chains), np.intp, m)
    t = np.concatenate([c.expiry_close for c in chains])
    t -= np.repeat([c.timestamp() for c in closes], sizes)
    t /= SECONDS_PER_YEAR
    oi = np.concatenate([c.open_interest for c in chains])
    keep = (t > 0) & (t <= (dte_window + 1) / 365.0) & (oi > 0)
    k = np.concatenate([c.strike for c in chains])
    day = np.concatenate([np.asarray(c.expiry, dtype="datetime64[D]") for c in chains]).view(np.int64)
    mults = {float(c.multiplier) for c in chains}
    mult = mults.pop() if len(mults) == 1 else np.repeat([float(c.multiplier) for c in chains], sizes)
    s = np.repeat(spots, sizes)
    iv = np.concatenate([c.iv for c in chains])
    with np.errstate(all="ignore"):  # every contract, kept or not: cheaper than gathering the kept ones
        dollars = dollar_gamma_per_pct(bs_gamma(s, k, t, iv, r, q), oi, s, mult)
    seg = np.repeat(np.arange(m), sizes)
    today = np.array([c.date() for c in closes], dtype="datetime64[D]").view(np.int64)
    if keep.any():
        seg[~keep] = m  # the contracts outside every book go to a discard session
        dte = np.where(day == _NAT_DTE, _LAST, day - np.repeat(today, sizes))  # an undated expiry sorts last
        is_call = np.concatenate([c.is_call for c in chains])
        _fill(out, lo, _Blocks.of(m, seg, k, dte, is_call, dollars), spots, today)


@dataclass
class _Blocks:
    """The chunk's (session, expiry, strike, side) dollar gamma: session i's (expiry, strike) matrices are
    cells[i, :n_e[i], :n_k[i], 0] (calls) and -cells[i, :n_e[i], :n_k[i], 1] (puts); zeros beyond."""

    cells: np.ndarray  # calls, and puts negated (>= 0 for positive IVs)
    n_e: np.ndarray
    n_k: np.ndarray
    strikes: np.ndarray  # (sessions, max n_k) ascending
    dte: np.ndarray  # (sessions, max n_e) calendar days, ascending; _NAT_DTE (last) for an undated expiry
    valid_k: np.ndarray  # (sessions, max n_k): column < n_k
    valid_e: np.ndarray  # (sessions, max n_e): row < n_e

    @classmethod
    def of(cls, m: int, seg, k, dte, is_call, dollars) -> "_Blocks":
        """seg: each contract's session, m for the contracts to leave out (whatever their values); dte:
        each contract's calendar days to expiry, _LAST for an undated expiry."""
        kvals, kcode = _strike_codes(k)
        first, last = int(dte.min()), int(dte.max())
        if (last - first + 1) * (m + 1) > 1 << 22:  # far-flung expiry dates: number the distinct ones instead
            dvals, dcode = np.unique(dte, return_inverse=True)
        else:
            dvals, dcode = np.arange(first, last + 1), dte - first
        k_flat, e_flat = seg * kvals.size, seg * dvals.size
        k_flat += kcode
        e_flat += dcode
        k_rank, n_k, k_present = _ranks(k_flat, m + 1, kvals.size)
        e_rank, n_e, e_present = _ranks(e_flat, m + 1, dvals.size)
        width_e, width_k = int(n_e[:m].max()), int(n_k[:m].max())
        row = (np.arange(m + 1)[:, None] * width_e + e_rank) * width_k  # where each (session, expiry) row starts
        cell = row.ravel()[e_flat]
        cell += k_rank.ravel()[k_flat]  # the discard session's cells land past the blocks
        cell *= 2
        cell += ~is_call
        # Each cell adds its contracts in chain order, as np.bincount over one session's contracts does.
        size = 2 * m * width_e * width_k
        cells = np.bincount(cell, dollars)[:size]
        cells = np.pad(cells, (0, size - cells.size)) if cells.size < size else cells
        dte_table = _table(e_present[:m], e_rank[:m], width_e, dvals)
        dte_table[dte_table == _LAST] = _NAT_DTE
        return cls(cells.reshape(m, width_e, width_k, 2), n_e[:m], n_k[:m],
                   _table(k_present[:m], k_rank[:m], width_k, kvals), dte_table, np.arange(width_k) < n_k[:m, None],
                   np.arange(width_e) < n_e[:m, None])

    def by_strike(self, cells: np.ndarray) -> np.ndarray:
        """cells (sessions, max n_e, max n_k, ...) summed over expiries as ndarray.sum(axis=0) sums one
        session's matrix: row after row, or pairwise for a one-strike matrix (numpy sums a lone column
        as a 1-D array)."""
        out = cells.sum(axis=1)
        lone = self.n_k == 1
        if lone.any():
            col = np.moveaxis(cells[lone, :, 0], 1, -1)  # (lone sessions, ..., expiries)
            valid = self.valid_e[lone].reshape(col.shape[:1] + (1,) * (col.ndim - 2) + col.shape[-1:])
            mask = np.broadcast_to(valid, col.shape).reshape(-1, col.shape[-1])
            out[lone, 0] = _masked_sums(col.reshape(mask.shape), mask).reshape(col.shape[:-1])
        return out


def _strike_codes(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(k, return_inverse=True) without a sort when the strikes lie on a 1/8 grid of moderate
    span (listed strikes do): grid points are exact in binary, so the strikes come back unchanged."""
    grid = k * 8.0
    lo, hi = grid.min(), grid.max()
    if hi - lo < 1 << 22 and np.array_equal(grid, np.floor(grid)):
        grid -= lo
        at = grid.astype(np.intp)
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
    rows = np.arange(m)
    s = spots[:, None]
    k = b.strikes
    by = b.by_strike(b.cells)
    gamma = np.stack([by[..., 0], -by[..., 1]])  # per strike: calls, puts (negative)
    sig = _significant(gamma, b.valid_k)
    # walls: nearest significant call above / put below spot, nearest of each on either side
    col, has = _first_min(np.stack([sig[0] & (k > s), sig[1] & (k < s), sig[0], sig[1]]),
                          np.stack([k - s, s - k, np.abs(k - s), np.abs(k - s)]))
    wall = np.where(has, k[rows, col], np.nan)
    out.call_wall[lo:lo + m], out.put_wall[lo:lo + m] = wall[0], wall[1]
    out.call_wall_any[lo:lo + m], out.put_wall_any[lo:lo + m] = wall[2], wall[3]
    out.call_wall_gamma[lo:lo + m] = np.where(has[0], gamma[0, rows, col[0]], 0.0)
    out.put_wall_gamma[lo:lo + m] = np.where(has[1], gamma[1, rows, col[1]], 0.0)
    _wall_expiry(out, lo, b, col[:2], has[:2], today)
    _magnets(out, lo, b, s, today)
    to_friday = 4 - (today + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    this_week = b.valid_e & (b.dte <= to_friday[:, None]) & (b.dte != _NAT_DTE)
    n = int(this_week.sum(axis=1).max())  # expiries are ascending: this week's come first
    week = b.cells[:, :n]
    out.net_this_week[lo:lo + m] = _masked_sums(week[..., 0] - week[..., 1],
                                                this_week[:, :n, None] & b.valid_k[:, None, :])


def _significant(gamma: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Along the last axis, the strikes whose |gamma| reaches np.percentile(|live gamma|, 80), live =
    non-zero (numpy's linear method step by step: its virtual index, neighbours and _lerp; NaN, so no
    strike, where a live value is NaN)."""
    a = np.abs(gamma)
    live = valid & (gamma != 0)
    count = live.sum(axis=-1)
    ordered = np.sort(np.where(live, a, np.inf), axis=-1).reshape(-1, a.shape[-1])
    vi = (count - 1) * _Q
    prev = np.floor(vi)
    top = vi >= count - 1  # numpy takes the largest value there
    at = np.arange(ordered.shape[0])
    a_lo = ordered[at, np.where(top, count - 1, prev).clip(0).astype(np.intp).ravel()].reshape(count.shape)
    a_hi = ordered[at, np.where(top, count - 1, prev + 1).clip(0).astype(np.intp).ravel()].reshape(count.shape)
    with np.errstate(invalid="ignore"):
        t = vi - prev
        diff = a_hi - a_lo
        cut = np.where(t >= 0.5, a_hi - diff * (1 - t), a_lo + diff * t)
        cut[(live & np.isnan(a)).any(axis=-1)] = np.nan
        return live & (a >= cut[..., None])


def _first_min(mask: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along the last axis, the first position with the smallest d among mask (np.argmin over the
    subset), and whether there is one."""
    with np.errstate(invalid="ignore"):
        return np.argmin(np.where(mask, d, np.inf), axis=-1), mask.any(axis=-1)


def _wall_expiry(out: SignalStructures, lo: int, b: _Blocks, col: np.ndarray, has: np.ndarray, today) -> None:
    """How the call wall's (side 0) and the put wall's (side 1) gamma splits over time to expiry, where
    there is one: col is the wall's strike column per (side, session)."""
    side, row = np.nonzero(has)
    if row.size == 0:
        return
    g = b.cells[row, :, col[side, row], side]  # |gamma| at the wall strike per expiry
    valid, dte = b.valid_e[row], b.dte[row]
    soon = valid & (dte <= SOON_DTE)
    nxt = valid & (dte >= NEXT_DTE[0]) & (dte <= NEXT_DTE[1])
    total, soon_sum, next_sum = _masked_sums(np.concatenate([g, g, g]), np.concatenate([valid, soon, nxt])).reshape(3, -1)
    held = soon & (g > 0)
    first = np.argmax(held, axis=1)
    ok = total > 0
    has_first = ok & held.any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        soon_ratio, next_ratio = np.where(ok, soon_sum / total, 0.0), np.where(ok, next_sum / total, 0.0)
    first_dte = np.where(has_first, dte[np.arange(row.size), first], 0)
    dated = has_first & (first_dte != _NAT_DTE)
    first_day = np.where(dated, today[row] + first_dte, NAT.astype(np.int64)).view("datetime64[D]")
    for j, name in enumerate(("call", "put")):
        pick = side == j
        at = lo + row[pick]
        getattr(out, f"{name}_soon_ratio")[at] = soon_ratio[pick]
        getattr(out, f"{name}_next_ratio")[at] = next_ratio[pick]
        getattr(out, f"{name}_first_expiry")[at] = first_day[pick]
        getattr(out, f"{name}_first_dte")[at] = np.where(has_first[pick], first_dte[pick], np.nan)


def _magnets(out: SignalStructures, lo: int, b: _Blocks, s: np.ndarray, today) -> None:
    """The first standard monthly expiry >= 7 days out; per side of spot the strike with its largest gross
    gamma, as a share of the largest per-strike gross gamma of the whole chain (a share min(100, x) takes
    as Python's min does: 100 where x is NaN)."""
    days = np.where(b.dte == _NAT_DTE, NAT.astype(np.int64), today[:, None] + b.dte).view("datetime64[D]")
    monthly = b.valid_e & is_monthly_expiry(days) & (b.dte >= MAGNET_MIN_DTE)
    w = np.flatnonzero(monthly.any(axis=1) & (b.n_k > 0))
    if w.size == 0:
        return
    e = np.argmax(monthly[w], axis=1)
    gross_cells = b.cells[..., 0] + b.cells[..., 1]  # call - put, puts stored as |put|
    gross = gross_cells[w, e]  # the monthly expiry's
    valid = b.valid_k[w]
    peak = np.max(np.where(valid, b.by_strike(gross_cells)[w], -np.inf), axis=1)
    strikes, spot = b.strikes[w], s[w]
    cand = np.stack([(strikes > spot), (strikes < spot)]) & (gross > 0) & valid
    best = np.argmax(np.where(cand, gross, -np.inf), axis=-1)
    ok = cand.any(axis=-1) & ~(peak <= 0)
    r = np.arange(w.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = 100.0 * gross[r, best] / peak
        strength = np.where(share < 100.0, share, 100.0)
    at = lo + w
    out.magnet_expiry[at] = days[w, e]
    out.magnet_above[at], out.magnet_below[at] = np.where(ok, strikes[r, best], np.nan)
    out.magnet_above_strength[at], out.magnet_below_strength[at] = np.where(ok, strength, np.nan)


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
