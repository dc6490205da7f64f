"""Plausible bounds of a chain file's numbers: a value outside them is a broken file or a unit
mistake, never a market, and would make GEX overflow (OI x S^2 of 1e300s is infinite). Checked on
the parsed contracts, so every format gets the same rule and the message names file and line."""

from __future__ import annotations

import numpy as np

from gexhistory.errors import BadInput
from gexhistory.sources.chains.common import IV_MAX, ChainRows

PRICE_MAX = 1e6  # no listed underlying, strike or option trades above a million dollars
OI_MAX = 1e8  # the largest single contracts' OI is in the millions
EXPIRY_YEARS = 12  # LEAPS run three years; a decade and more out is a typo in the year

BOUNDS = (  # (ChainRows field, what the message calls it, upper bound)
    ("strike", "strike", PRICE_MAX),
    ("spot", "underlying price", PRICE_MAX),
    ("oi", "open interest", OI_MAX),
    ("file_iv", "IV", IV_MAX),
    ("mid", "option price", PRICE_MAX),
)


def check_bounds(rows: ChainRows) -> None:
    """BadInput naming the first contract (file:line) whose number is not finite or out of bounds."""
    worst: tuple[int, str] | None = None
    for name, what, top in BOUNDS:
        v = getattr(rows, name)
        if v is None:
            continue
        v = np.asarray(v, dtype=float)
        bad = np.isinf(v) | (np.isfinite(v) & ((v < 0) | (v > top)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            msg = f"{what} {float(v[i]):g} is out of range (0 to {top:,.0f})"
            if worst is None or int(rows.lines[i]) < worst[0]:
                worst = (int(rows.lines[i]), msg)
    far = rows.expiry > rows.as_of + np.timedelta64(366 * EXPIRY_YEARS, "D")
    if far.any():
        i = int(np.flatnonzero(far)[0])
        if worst is None or int(rows.lines[i]) < worst[0]:
            worst = (int(rows.lines[i]), f"expiration {rows.expiry[i]} is more than {EXPIRY_YEARS} years after "
                                         f"the chain's date {rows.as_of[i]}")
    for key, (spot, kind) in (rows.quoted_spots or {}).items():
        if not (np.isfinite(spot) and 0 < spot <= PRICE_MAX):
            raise BadInput(f"{rows.path}: underlying price {spot:g} ({kind}) is out of range (0 to {PRICE_MAX:,.0f})")
    if worst is not None:
        raise BadInput(f"{rows.path}:{worst[0]}: {worst[1]}")
