"""Several sessions' option chains as one flat book of positions, ready for the exposure engine.

A position is a (strike, expiry, IV) group of one session's chain: the call and the put of a strike share
strike, expiry and (in the modelled chain) IV, so they share one Black-Scholes gamma and one evaluation
in the flip search. Positions are laid out session by session, and within a session by expiry, then
strike, then IV, so each session's expiries are contiguous runs of positions. What depends on the chain
alone is computed here once per session, not once per snapshot: per expiry run its open interest and max
pain, per strike its index, and the strikes the 30-day ATM IV looks up.

Chains that arrive in another order (imported files) are sorted here, once. With vendor gamma (a file's
own greeks, Conventions.gamma_source='vendor') each contract keeps its own gamma, so each contract is its
own position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.segments import expand, lengths_to_starts, seg_argmax


@dataclass
class ChainBook:
    n_sessions: int
    start: np.ndarray  # (B+1,) offsets of each session's positions
    strike: np.ndarray  # per position
    iv: np.ndarray
    call_oi: np.ndarray  # open interest of the position's calls (contracts with OI > 0)
    put_oi: np.ndarray
    n_open: np.ndarray  # contracts with OI > 0 in the position
    vendor_gamma: np.ndarray  # per position: the file's own gamma where `own` (else unused)
    own: np.ndarray  # per position: uses vendor gamma (each such contract is a position of its own)
    strike_index: np.ndarray  # per position: index into its session's sorted unique strikes
    strikes: np.ndarray  # every session's unique strikes, ascending, end to end
    strike_start: np.ndarray  # (B+1,) offsets into `strikes`
    multiplier: np.ndarray  # (B,)
    # Expiry runs: contiguous positions of one session and one expiry.
    run_start: np.ndarray  # (R+1,) offsets into positions
    session_runs: np.ndarray  # (B+1,) offsets into runs
    run_close: np.ndarray  # expiry close, POSIX seconds
    run_day: np.ndarray  # expiry date, days since 1970-01-01
    run_call_oi: np.ndarray
    run_put_oi: np.ndarray
    run_open: np.ndarray  # bool: the run holds a contract with OI > 0
    atm: "AtmIndex"

    @property
    def session(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_sessions), np.diff(self.start))

    @property
    def run_session(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_sessions), np.diff(self.session_runs))

    @property
    def run_of_position(self) -> np.ndarray:
        return np.repeat(np.arange(self.run_close.size), np.diff(self.run_start))

    @classmethod
    def of(cls, chains: list[OptionChain], vendor: bool = False) -> "ChainBook":
        n = len(chains)
        sizes = np.array([len(c) for c in chains], dtype=np.intp)
        cstart = lengths_to_starts(sizes)
        seg = np.repeat(np.arange(n), sizes)
        cat = lambda f: np.concatenate([np.asarray(getattr(c, f)) for c in chains]) if n else np.zeros(0)  # noqa: E731
        k = cat("strike").astype(float)
        e = cat("expiry_close").astype(float)
        iv = cat("iv").astype(float)
        day = cat("expiry").astype("datetime64[D]").astype(np.int64) if n else np.zeros(0, np.int64)
        call = cat("is_call").astype(bool)
        oi = cat("open_interest").astype(float)
        own = np.zeros(k.size, dtype=bool)  # contracts that keep their own (vendor) gamma
        vg = np.full(k.size, np.nan)
        if vendor:
            for i, c in enumerate(chains):
                if c.gamma is not None:  # a contract the file gives no gamma for takes Black-Scholes'
                    g = np.asarray(c.gamma, dtype=float)
                    own[cstart[i]:cstart[i + 1]] = np.isfinite(g)
                    vg[cstart[i]:cstart[i + 1]] = g
        order = _canonical_order(seg, e, k, iv)
        if order is not None:
            k, e, iv, day, call, oi, own, vg = (a[order] for a in (k, e, iv, day, call, oi, own, vg))
        new_seg = np.ones(k.size, dtype=bool)
        new_seg[1:] = seg[1:] != seg[:-1]
        new_run = new_seg.copy()
        new_run[1:] |= e[1:] != e[:-1]
        new = new_run.copy()
        new[1:] |= (k[1:] != k[:-1]) | (iv[1:] != iv[:-1]) | own[1:]
        first = np.flatnonzero(new)
        group = np.cumsum(new) - 1
        open_ = oi > 0
        # Positions hold one or two contracts: bincount beats reduceat's per-segment cost here.
        sums = lambda w: np.bincount(group, w, first.size)  # noqa: E731
        call_oi = sums(np.where(call & open_, oi, 0.0))
        put_oi = sums(np.where(~call & open_, oi, 0.0))
        n_open = np.bincount(group[open_], minlength=first.size)
        pseg = seg[first]
        start = lengths_to_starts(np.bincount(pseg, minlength=n)) if n else np.zeros(1, np.intp)
        strike = k[first]
        strikes, strike_start, strike_index = _session_strikes(strike, pseg, n)

        # Expiry runs over positions.
        prun = new_run[first]
        rfirst = np.flatnonzero(prun)
        run_start = np.append(rfirst, strike.size).astype(np.intp)
        rsums = lambda x: np.add.reduceat(x, rfirst) if rfirst.size else np.zeros(0)  # noqa: E731
        run_open = rsums(n_open) > 0
        book = cls(
            n, start, strike, iv[first], call_oi, put_oi, n_open, vg[first], own[first], strike_index, strikes,
            strike_start, np.array([c.multiplier for c in chains], dtype=float),
            run_start, lengths_to_starts(np.bincount(pseg[rfirst], minlength=n)) if n else np.zeros(1, np.intp),
            e[first][rfirst], day[first][rfirst], rsums(call_oi), rsums(put_oi), run_open, None,
        )
        book.atm = AtmIndex.of(book)
        return book


def _canonical_order(seg, e, k, iv) -> np.ndarray | None:
    """None when every chain is already in an order that keeps each position's contracts together (by
    expiry, then strike, then IV, or with at most two contracts per expiry and strike: a call and a
    put, as imported chains come); else the sorting permutation by (expiry, strike, IV)."""
    if seg.size < 2:
        return None
    same = seg[1:] == seg[:-1]
    same_ek = same & (e[1:] == e[:-1]) & (k[1:] == k[:-1])
    ok = (e[1:] > e[:-1]) | ((e[1:] == e[:-1]) & ((k[1:] > k[:-1]) | ((k[1:] == k[:-1]) & (iv[1:] >= iv[:-1]))))
    pairs_only = not (same_ek[1:] & same_ek[:-1]).any()  # no expiry and strike held three times
    if np.all(ok | ~same) or (pairs_only and np.all(ok | same_ek | ~same)):
        return None
    return np.lexsort((iv, k, e, seg))


def _session_strikes(k: np.ndarray, seg: np.ndarray, n: int):
    """Each session's sorted unique strikes (end to end), their offsets, and each position's index."""
    if k.size == 0:
        return np.zeros(0), np.zeros(n + 1, np.intp), np.zeros(0, np.intp)
    if np.isnan(k).any():  # NaN strikes: one NaN bin per session, as np.unique makes
        order = np.lexsort((k, seg))
    else:
        # Positions are ordered by expiry, so strikes come in sorted runs: a stable sort on one key
        # (session, then strike) is cheap. The key separates strikes of one session exactly: it is
        # strictly increasing in the strike, and the session offset dwarfs the strike span.
        span = float(k.max() - k.min()) + 1.0
        order = np.argsort(seg * (4.0 * span) + (k - k.min()), kind="stable")
        if np.any((seg[order][1:] == seg[order][:-1]) & (k[order][1:] < k[order][:-1])):
            order = np.lexsort((k, seg))  # strikes closer than the key resolves (never on a real grid)
    ks, ss = k[order], seg[order]
    new = np.ones(k.size, dtype=bool)
    new[1:] = (ss[1:] != ss[:-1]) | ~((ks[1:] == ks[:-1]) | (np.isnan(ks[1:]) & np.isnan(ks[:-1])))
    strikes = ks[new]
    strike_start = lengths_to_starts(np.bincount(ss[new], minlength=n))
    rank = np.cumsum(new) - 1
    index = np.empty(k.size, dtype=np.intp)
    index[order] = rank - strike_start[ss]
    return strikes, strike_start, index


def max_pain(book: ChainBook, runs: np.ndarray) -> np.ndarray:
    """For each of `runs` (expiry runs with an open contract): the strike that minimises the intrinsic
    value paid to holders, over the run's strikes with an open contract. From prefix sums over the run's
    strikes (ascending): paid at c = c * (call OI below c) - (call OI x strike below c)
    + (put OI x strike above c) - c * (put OI above c). The prefix sums run inside each run only (one
    padded row per run), so no other session's numbers enter a run's rounding."""
    if runs.size == 0:
        return np.zeros(0)
    pos, row = expand(book.run_start, runs)
    pos, row = pos[book.n_open[pos] > 0], row[book.n_open[pos] > 0]
    size = np.bincount(row, minlength=runs.size)
    first = lengths_to_starts(size)
    col = np.arange(pos.size) - first[row]
    k, co, po = book.strike[pos], book.call_oi[pos], book.put_oi[pos]

    def padded(x):
        m = np.zeros((runs.size, int(size.max()) + 1))
        m[row, col + 1] = x
        return np.cumsum(m, axis=1)  # m[r, j]: the sum over the run's first j entries

    c1, c2, p1, p2 = padded(co), padded(co * k), padded(po), padded(po * k)
    # Each distinct strike of a run is a candidate: its first and last entry (IVs may split a strike).
    new = np.ones(pos.size, dtype=bool)
    new[1:] = (row[1:] != row[:-1]) | (k[1:] != k[:-1])
    cf = np.flatnonzero(new)
    cl = np.append(cf[1:], pos.size) - 1
    r, a, b = row[cf], col[cf], col[cl] + 1
    end = size[r]
    c = k[cf]
    paid = c * c1[r, a] - c2[r, a] + (p2[r, end] - p2[r, b]) - c * (p1[r, end] - p1[r, b])
    best = seg_argmax(-paid, lengths_to_starts(np.bincount(r, minlength=runs.size)))
    out = np.full(runs.size, np.nan)
    ok = best >= 0
    out[ok] = c[best[ok]]
    return out


@dataclass
class AtmIndex:
    """The positions the 30-day ATM IV reads (an open contract and a finite IV), run by run in strike
    order, with what finds the strike nearest a spot in O(log n) and averages the IV there in O(1)."""

    key: np.ndarray  # run * width + strike offset: increasing over the whole index
    width: float
    kmin: float
    strike: np.ndarray
    block: np.ndarray  # per entry: its (run, strike) block
    iv_sum: np.ndarray  # per block: contracts x IV, summed over the block alone
    count: np.ndarray  # per block: contracts
    run_lo: np.ndarray  # (R,) each run's entries [run_lo, run_hi)
    run_hi: np.ndarray

    @classmethod
    def of(cls, book: ChainBook) -> "AtmIndex":
        ok = np.flatnonzero((book.n_open > 0) & np.isfinite(book.iv) & np.isfinite(book.strike))
        k = book.strike[ok]
        run = book.run_of_position[ok]
        kmin = float(k.min()) if k.size else 0.0
        width = 4.0 * (float(k.max() - kmin) + 1.0) if k.size else 1.0
        new = np.ones(k.size, dtype=bool)
        new[1:] = (run[1:] != run[:-1]) | (k[1:] != k[:-1])
        block = np.cumsum(new) - 1
        nb = int(block[-1]) + 1 if k.size else 0
        n = book.n_open[ok].astype(float)
        sums = lambda x: np.bincount(block, x, nb)  # noqa: E731
        counts = np.bincount(run, minlength=book.run_close.size) if k.size else np.zeros(book.run_close.size, np.intp)
        run_lo = lengths_to_starts(counts)
        return cls(run * width + (k - kmin), width, kmin, k, block, sums(n * book.iv[ok]), sums(n),
                   run_lo[:-1], run_lo[1:])

    def nearest_mean_iv(self, runs: np.ndarray, spots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each (run, spot): the mean IV of the run's contracts at the strike nearest spot (both
        strikes on a tie), and how many contracts that is (0: the run has none)."""
        if self.strike.size == 0:
            return np.full(runs.size, np.nan), np.zeros(runs.size)
        lo, hi = self.run_lo[runs], self.run_hi[runs]
        has = hi > lo
        i = np.searchsorted(self.key, runs * self.width + (spots - self.kmin))
        i = np.clip(i, lo, np.maximum(hi - 1, lo))  # the key only narrows it down: check both neighbours
        below = np.maximum(i - 1, lo)
        cand = np.stack([below, i, np.minimum(i + 1, np.maximum(hi - 1, lo))])
        cand = np.minimum(cand, self.strike.size - 1)
        kk = self.strike[cand]
        dist = np.abs(kk - spots)
        near = dist.min(axis=0)
        at = dist == near  # the candidates at the nearest distance (two strikes on a tie)
        total = np.zeros(runs.size)
        count = np.zeros(runs.size)
        seen = np.full(runs.size, -1)
        for c in range(3):  # a block reached from two candidates counts once
            blk = self.block[cand[c]]
            take = has & at[c] & (blk != seen)
            total += np.where(take, self.iv_sum[blk], 0.0)
            count += np.where(take, self.count[blk], 0.0)
            seen = np.where(take, blk, seen)
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan), count
