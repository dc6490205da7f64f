"""Chains split over several files: Cboe's delayed-quotes page downloads a long chain (SPX) in
pieces by expiration range, each a quotedata file with the same underlying and session. Given
together to one import they are one chain: the union of their contracts, a contract listed in two
pieces counted once (the later file's row, as a later file wins elsewhere in an import)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.pipeline.chain_prep import ImportedChain
from gexhistory.sources.chains import quotedata
from gexhistory.sources.chains.common import make_label
from gexhistory.words import plural

SPLIT_FORMATS = {quotedata.FORMAT}


def union_split_files(items: list[ImportedChain]) -> list[ImportedChain]:
    """`items` with the chains of split formats that share an underlying and session merged into one."""
    groups: dict[tuple, list[ImportedChain]] = {}
    out = []
    for p in items:
        if p.fmt in SPLIT_FORMATS:
            groups.setdefault((p.chain.underlying, p.chain.as_of), []).append(p)
        else:
            out.append(p)
    for parts in groups.values():
        out.append(parts[0] if len(parts) == 1 else _union(parts))
    return out


def _union(parts: list[ImportedChain]) -> ImportedChain:
    cat = lambda f: np.concatenate([getattr(p.chain, f) for p in parts])  # noqa: E731
    gamma = np.concatenate([p.chain.gamma if p.chain.gamma is not None else np.full(len(p.chain), np.nan)
                            for p in parts])
    src = np.concatenate([p.iv_source for p in parts])
    expiry, close, strike, call = cat("expiry"), cat("expiry_close"), cat("strike"), cat("is_call")
    # The last occurrence of each contract wins: sort by contract, then by position, and keep the last.
    pos = np.arange(strike.size)
    order = np.lexsort((pos, call, strike, close, expiry.astype(np.int64)))
    e, c, k, cp = expiry[order], close[order], strike[order], call[order]
    last = np.ones(order.size, dtype=bool)
    last[:-1] = (e[1:] != e[:-1]) | (c[1:] != c[:-1]) | (k[1:] != k[:-1]) | (cp[1:] != cp[:-1])
    keep = order[last]
    twice = strike.size - keep.size
    first = parts[0].chain
    names = [Path(p.file).name for p in parts]
    label = make_label(parts[0].fmt, "+".join(names))
    chain = OptionChain(first.underlying, first.as_of, expiry[keep], close[keep], strike[keep], call[keep],
                        cat("open_interest")[keep], cat("iv")[keep], label,
                        gamma[keep] if np.isfinite(gamma).any() else None, first.multiplier)
    latest = max(parts, key=lambda p: (p.moment is not None, p.moment or 0))
    notes = [f"one chain from {len(parts)} files: {', '.join(names)}"]
    if twice:
        notes.append(f"{plural(twice, 'contract')} listed in more than one file counted once (the later file's)")
    spots = {p.file_spot for p in parts}
    if len(spots) > 1:
        notes.append(f"the files' underlying prices differ ({', '.join(f'{s:g}' for s in sorted(spots))}): "
                     f"the latest download's, {latest.file_spot:g}, used")
    for p in parts:
        notes.extend(f"{Path(p.file).name}: {n}" for n in p.notes)
    return ImportedChain(chain, parts[0].fmt, " + ".join(p.file for p in parts), label, src[keep],
                         latest.file_spot, latest.file_spot_kind, notes, latest.moment)
