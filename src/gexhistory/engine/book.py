"""Several sessions' option chains as one flat book of positions, ready for the exposure engine.

A position is a (strike, expiry, IV) group of one session's chain: the call and the put of a strike share
strike, expiry and (in the modelled chain) IV, so they share one Black-Scholes gamma and one evaluation
in the flip search. Positions are laid out session by session, and within a session by expiry, then
strike, then IV; so each session's expiries are contiguous runs, which the 30-day ATM IV and max pain
reduce over. Chains that arrive in another order (imported files) are sorted here, once.

With vendor gamma (a file's own greeks, Conventions.gamma_source='vendor') each contract keeps its own
gamma, so each contract is its own position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.segments import lengths_to_starts


@dataclass
class ChainBook:
    n_sessions: int
    start: np.ndarray  # (B+1,) offsets of each session's positions
    strike: np.ndarray  # per position
    expiry_close: np.ndarray  # POSIX seconds
    expiry_day: np.ndarray  # days since 1970-01-01
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

    @property
    def session(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_sessions), np.diff(self.start))

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
                if c.gamma is not None:
                    own[cstart[i]:cstart[i + 1]] = True
                    vg[cstart[i]:cstart[i + 1]] = c.gamma
        order = _canonical_order(seg, e, k, iv)
        if order is not None:
            k, e, iv, day, call, oi, own, vg = (a[order] for a in (k, e, iv, day, call, oi, own, vg))
        new = np.ones(k.size, dtype=bool)
        if k.size:
            new[1:] = (seg[1:] != seg[:-1]) | (k[1:] != k[:-1]) | (e[1:] != e[:-1]) | (iv[1:] != iv[:-1]) | own[1:]
        first = np.flatnonzero(new)
        open_ = oi > 0
        sums = lambda x: np.add.reduceat(x, first) if first.size else np.zeros(0)  # noqa: E731
        call_oi = sums(np.where(call & open_, oi, 0.0))
        put_oi = sums(np.where(~call & open_, oi, 0.0))
        n_open = sums(open_.astype(np.int64))
        pseg = seg[first]
        start = lengths_to_starts(np.bincount(pseg, minlength=n)) if n else np.zeros(1, np.intp)
        strikes, strike_start, strike_index = _session_strikes(k[first], pseg, n)
        mult = np.array([c.multiplier for c in chains], dtype=float)
        return cls(n, start, k[first], e[first], day[first], iv[first], call_oi, put_oi, n_open,
                   vg[first], own[first], strike_index, strikes, strike_start, mult)


def _canonical_order(seg, e, k, iv) -> np.ndarray | None:
    """None when every chain is already ordered by (expiry, strike, IV); else the sorting permutation."""
    if seg.size < 2:
        return None
    same = seg[1:] == seg[:-1]
    ok = (e[1:] > e[:-1]) | ((e[1:] == e[:-1]) & ((k[1:] > k[:-1]) | ((k[1:] == k[:-1]) & (iv[1:] >= iv[:-1]))))
    if np.all(ok | ~same):
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
