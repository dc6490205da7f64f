"""A chain's stored form and back: the columns store/packed.py packs (one row per contract key, an
AM-settled contract beside the PM one of its key), and the OptionChain the engine takes, rebuilt from
them. Used by the import (chain_store), the spill of a large import (chain_spill), a live snapshot
(cboe_snapshot) and a backfill reading a stored chain."""

from __future__ import annotations

import datetime as dt

import numpy as np

from gexhistory.engine.chain import OptionChain


def contract_columns(items) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every chain's contracts as store/chains.replace_chains takes them: the index in `items` of each
    contract's chain, and the contracts column by column (packed.pack_chains' columns). `items`:
    records with .chain, .label and .iv_source (an ImportedChain; a live snapshot's chain too).

    A stored chain's key has no root: an AM-settled contract beside a PM one of the same chain,
    expiration, strike and right (an SPX monthly and the SPXW contract of its third Friday) is stored
    with the PM one, as open_interest_at_open and iv_at_open (stored_chain splits them again)."""
    from gexhistory.pipeline.chain_prep import expiry_close_ts  # lazy: pandas, as parse_files loads it

    n = [len(p.chain) for p in items]
    chain = np.repeat(np.arange(len(items)), n)
    if not items:
        return chain, {}
    cat = lambda get: np.concatenate([get(p) for p in items])  # noqa: E731
    gamma = cat(lambda p: p.chain.gamma if p.chain.gamma is not None else np.full(len(p.chain), np.nan))
    expiry = cat(lambda p: p.chain.expiry).astype("datetime64[D]")
    strike = cat(lambda p: p.chain.strike).astype(float)
    is_call = cat(lambda p: p.chain.is_call).astype(bool)
    oi = cat(lambda p: p.chain.open_interest).astype(float)
    iv = cat(lambda p: p.chain.iv).astype(float)
    at_open = cat(lambda p: p.chain.expiry_close) < expiry_close_ts(expiry)  # AM-settled: timed to the open
    oi_at_open, iv_at_open = np.full(oi.size, np.nan), np.full(oi.size, np.nan)
    keep = np.ones(oi.size, dtype=bool)
    if at_open.any():
        day = expiry.astype(np.int64)
        # Only chains holding an AM contract (SPX, NDX, ...) can pair: a key's PM row just before its AM row.
        has_am = np.zeros(len(items), dtype=bool)
        has_am[chain[at_open]] = True
        rows = np.flatnonzero(has_am[chain])
        order = rows[np.lexsort((at_open[rows], is_call[rows], strike[rows], day[rows], chain[rows]))]
        a, b = order[:-1], order[1:]
        pair = ((chain[a] == chain[b]) & (day[a] == day[b]) & (strike[a] == strike[b]) & (is_call[a] == is_call[b])
                & ~at_open[a] & at_open[b])
        pm, am = a[pair], b[pair]
        oi_at_open[pm], iv_at_open[pm] = oi[am], iv[am]
        keep[am] = False
    cols = {"expiration": expiry, "strike": strike, "is_call": is_call, "open_interest": oi, "iv": iv,
            "iv_source": cat(lambda p: np.asarray(p.iv_source).astype(str)), "gamma": gamma,
            "expires_at_open": at_open, "open_interest_at_open": oi_at_open, "iv_at_open": iv_at_open}
    if keep.all():
        return chain, cols
    return chain[keep], {k: v[keep] for k, v in cols.items()}


def chain_from_stored(underlying: str, day: dt.date, source: str, a: dict[str, np.ndarray],
                      closes: tuple[np.ndarray, np.ndarray] | None = None) -> OptionChain:
    """The OptionChain of stored contracts `a` (packed.unpack's arrays): the AM-settled contracts stored
    beside PM ones split out again, each expiry's close from the calendar, in build_chains' order.
    `closes`: per row of `a`, the close of its contract and the open of its expiration session
    (expiry_close_ts), when the caller has them for many chains at once."""
    from gexhistory.pipeline.chain_prep import expiry_close_ts  # lazy: a backfill loads pandas only for such a chain

    beside = np.isfinite(a["oi_at_open"])  # AM contracts stored in a PM contract's row
    two = lambda col, extra: np.concatenate([a[col], extra])  # noqa: E731
    expiry = two("expiration", a["expiration"][beside])
    if closes is None:
        close = expiry_close_ts(expiry, two("at_open", np.ones(int(beside.sum()), dtype=bool)))
    else:
        close = np.concatenate([closes[0], closes[1][beside]])
    strike, is_call = two("strike", a["strike"][beside]), two("is_call", a["is_call"][beside])
    oi, iv = two("open_interest", a["oi_at_open"][beside]), two("iv", a["iv_at_open"][beside])
    gamma = two("gamma", np.full(int(beside.sum()), np.nan))
    order = np.lexsort((is_call, strike, close, expiry))  # build_chains' order
    return OptionChain(underlying, day, expiry[order], close[order], strike[order], is_call[order],
                       oi[order], iv[order], source, gamma=gamma[order] if np.isfinite(gamma).any() else None)
