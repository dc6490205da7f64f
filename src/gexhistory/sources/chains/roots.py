"""Option roots: which underlying a root's contracts are on, and which roots settle at the open.

Index options trade under several roots that are one underlying for GEX (SPX's standard monthlies
and its weeklies SPXW hedge against the same index). An equity option's root is its symbol (NVDA),
with a digit added after a corporate action (NVDA1): the letters are the underlying.

AM-settled roots expire at the open of their expiration session (the settlement value comes from
the opening prints), not at its close: a standard SPX monthly is gone by 09:30 on its third Friday,
while an SPXW contract of the same date lives to the close.
"""

from __future__ import annotations

import re

import numpy as np

INDEX_ROOTS = {
    "SPX": "SPX", "SPXW": "SPX", "SPXQ": "SPX", "SPXPM": "SPX",
    "NDX": "NDX", "NDXP": "NDX",
    "RUT": "RUT", "RUTW": "RUT",
    "VIX": "VIX", "VIXW": "VIX",
    "XSP": "XSP", "DJX": "DJX",
}
AM_SETTLED = frozenset({"SPX", "NDX", "RUT", "VIX", "VIXW", "DJX"})
_EQUITY = re.compile(r"^([A-Z]{1,5})\d?$")


def underlying_of(root: str) -> str | None:
    """The underlying a root's contracts are on, or None when the root cannot be read."""
    if root in INDEX_ROOTS:
        return INDEX_ROOTS[root]
    m = _EQUITY.match(root)
    return m.group(1) if m else None


def am_settled(roots: np.ndarray) -> np.ndarray:
    """Per contract: True where its root settles at the open of the expiration session."""
    return np.isin(np.asarray(roots, dtype=object).astype(str), sorted(AM_SETTLED))
