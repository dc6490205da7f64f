"""Generic long CSV: one row per contract.

Columns (header names, any order, any case): date, underlying, expiration, strike, right (C/P),
oi, iv, and optionally gamma, spot and root.

Interpretation:
- `date` is the session the row's OI applies to: OI published on the morning of that date (the
  previous session's closing OI, as OCC publishes it) drives that date's GEX.
- `iv` is a decimal (0.25 for 25%); `gamma` is kept as the vendor's value (the engine recomputes
  Black-Scholes gamma unless told to use the vendor's); `spot`, when present, is the underlying
  price the file was taken at and serves as the end-of-day spot when no stored bars exist.
- `root`, when present, is the option's root symbol (SPX, SPXW, NVDA...): it says which contracts are
  AM-settled (sources/chains/roots.py) and which rows of one contract under two roots merge, as in a
  Cboe file. Without it every contract expires at its session's close.
"""

from __future__ import annotations

import numpy as np

from gexhistory.sources.chains.common import ChainRows, Table, expiry_check, make_label, session_check, vendor_gamma

FORMAT = "generic"
REQUIRED = {"date", "underlying", "expiration", "strike", "right", "oi", "iv"}
OI_ONLY = {"date", "expiration", "strike", "right", "oi"}  # enough for an --oi-file


def matches(columns: set[str]) -> bool:
    return REQUIRED <= columns


def parse(table: Table, *, require_iv: bool = True, underlying: str | None = None) -> ChainRows:
    t = table
    if "underlying" in t.columns:
        und = np.array([u.upper() for u in t.text("underlying")], dtype=object)
        t._report(und == "", "underlying", und, "is missing")
    else:
        und = np.full(len(t), (underlying or "").upper(), dtype=object)
    as_of = t.date("date")
    expiry = t.date("expiration")
    strike = t.number("strike", positive=True)
    is_call = t.right("right")
    oi = t.number("oi", nonneg=True)
    # A blank or zero IV is no IV: that contract is left out and counted (pipeline/chain_prep.py), the file kept.
    iv = t.iv("iv", required=False) if "iv" in t.columns else np.full(len(t), np.nan)
    notes: list[str] = []
    gamma = vendor_gamma(t, "gamma", notes) if "gamma" in t.columns else None
    spot = t.number("spot", required=False, positive=True) if "spot" in t.columns else None
    roots = root_index = None
    if "root" in t.columns:  # coded by their distinct values, upper case ('spxw' is SPXW)
        raw, index = t.distinct("root")
        roots, remap = np.unique(np.array([r.upper() for r in raw] + [""], dtype=object)[:-1].astype(str),
                                 return_inverse=True)
        root_index = remap.reshape(-1)[index] if index.size else index
    t.check()
    expiry_check(t, as_of, expiry, "expiration")
    session_check(t, as_of, "date")
    t.check()
    return ChainRows(t.path, FORMAT, make_label(FORMAT, t.path), und, as_of, expiry, strike, is_call, oi, t.lines, iv,
                     gamma=gamma, spot=spot, spot_kind="spot column" if spot is not None else None, derive_iv=False,
                     notes=notes, keep_without_iv=not require_iv, group=root_index,
                     group_names=None if roots is None else roots.astype(object))
