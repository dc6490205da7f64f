"""OptionsDX end-of-day files: wide rows (one expiration and strike, call and put side by side) with
bracketed headers: [QUOTE_DATE], [UNDERLYING_LAST], [EXPIRE_DATE], [STRIKE], [C_IV], [P_IV],
[C_GAMMA], [P_GAMMA], [C_VOLUME], [P_VOLUME], ...

They carry no open interest, so one of two things must be said:
- `--oi-file FILE`: OI from another chain file (any format this importer reads, or a CSV with just
  date, [underlying,] expiration, strike, right, oi), matched on date, expiration, strike and right;
  contracts the OI file does not list get no OI (counted in the notes). chain_source ends in '+oi'.
- `--volume-as-oi`: each contract's day volume stands in for OI, an explicitly labelled proxy
  (chain_source ends in '+volume_proxy'): volume measures trading, not positions.

Interpretation: the quote date D is the chain's date; OI from the OI file for D is the OI published
on D's morning. IV: C_IV/P_IV (blank or zero ones interpolated across strikes of the expiry).
Spot: UNDERLYING_LAST (the underlying at the quote time, the close for EOD files). The underlying is
--underlying, else the OI file's, else the file name's prefix (spy_eod_202301.txt -> SPY). The OI
file's chains and the IVs are derived by pipeline/chain_prep.py; this module reads the columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.errors import BadInput
from gexhistory.sources.chains.common import ChainRows, Table, expiry_check, make_label, session_check, vendor_gamma
from gexhistory.words import plural

FORMAT = "optionsdx"
REQUIRED = {"quote_date", "underlying_last", "expire_date", "strike", "c_iv", "p_iv"}


def matches(columns: set[str]) -> bool:
    return REQUIRED <= columns


def _oi_map(oi_file: str, oi_chains: list[OptionChain], underlying: str | None):
    """(underlying, a table of (date, expiry, strike, is_call) -> oi) from the chains of an OI file."""
    import pandas as pd  # lazy: its import is a sixth of a second of start-up

    chains = oi_chains
    unds = {c.underlying for c in chains}
    if underlying:
        chains = [c for c in chains if c.underlying == underlying.upper()]
    elif len(unds) > 1:
        raise BadInput(f"{oi_file}: OI for several underlyings ({', '.join(sorted(unds))}): give --underlying")
    frames = [pd.DataFrame({"d": np.datetime64(c.as_of, "D"), "e": c.expiry, "k": c.strike,
                            "c": c.is_call, "oi": c.open_interest}) for c in chains]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["d", "e", "k", "c", "oi"])
    und = underlying.upper() if underlying else (next(iter(unds)) if unds else None)
    return und, table


def parse(table: Table, *, oi_file: str | None = None, oi_chains: list[OptionChain] | None = None,
          volume_as_oi: bool = False, underlying: str | None = None) -> ChainRows:
    """`oi_chains`: the chains read from `oi_file` (any other format), whose OI is merged in."""
    import pandas as pd  # lazy: its import is a sixth of a second of start-up

    t = table
    if not oi_file and not volume_as_oi:
        raise BadInput(f"{t.path}: OptionsDX files carry no open interest: give --oi-file FILE, or "
                       f"--volume-as-oi to use volume as a labelled proxy")
    if volume_as_oi and not {"c_volume", "p_volume"} <= t.columns:
        raise BadInput(f"{t.path}: --volume-as-oi needs the C_VOLUME and P_VOLUME columns")
    as_of = t.date("quote_date")
    expiry = t.date("expire_date")
    strike = t.number("strike", positive=True)
    spot = t.number("underlying_last", positive=True)
    civ, piv = t.iv("c_iv", required=False), t.iv("p_iv", required=False)
    gamma = None
    if {"c_gamma", "p_gamma"} <= t.columns:
        gamma_notes: list[str] = []
        gamma = np.concatenate([vendor_gamma(t, "c_gamma", gamma_notes), vendor_gamma(t, "p_gamma", gamma_notes)])
    vol = None
    if volume_as_oi:
        vol = np.concatenate([t.number("c_volume", required=False, nonneg=True),
                              t.number("p_volume", required=False, nonneg=True)])
    t.check()
    expiry_check(t, as_of, expiry, "expire_date")
    session_check(t, as_of, "quote_date")
    t.check()

    notes: list[str] = list(gamma_notes) if gamma is not None else []
    if oi_file:
        und, oi_by = _oi_map(oi_file, oi_chains or [], underlying)
        suffix = "+oi"
    else:
        und, oi_by, suffix = (underlying.upper() if underlying else None), None, "+volume_proxy"
        notes.append("OI is each contract's day volume: a labelled proxy, not open interest")
    if und is None:
        m = re.match(r"([A-Za-z]+)_", Path(t.path).name)
        if not m:
            raise BadInput(f"{t.path}: cannot tell the underlying (name the file like spy_eod_202301.txt, "
                           f"or give --underlying)")
        und = m.group(1).upper()
    two = lambda a: np.concatenate([a, a])  # noqa: E731  (each row is a call and a put)
    n = len(t)
    as_of2, exp2, k2 = two(as_of), two(expiry), two(strike)
    is_call = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    if oi_by is not None:
        mine = pd.DataFrame({"d": as_of2, "e": exp2, "k": k2, "c": is_call})
        oi = mine.merge(oi_by, on=["d", "e", "k", "c"], how="left")["oi"].to_numpy(dtype=float)
        if not np.isfinite(oi).any():
            raise BadInput(f"{oi_file}: none of its contracts match {t.path} (dates, expirations, strikes)")
        missing = int((~np.isfinite(oi)).sum())
        if missing:
            notes.append(f"{plural(missing, 'contract')} absent from the OI file {Path(oi_file).name}: no OI")
        notes.append(f"OI from {Path(oi_file).name}")
        oi = np.nan_to_num(oi)
    else:
        oi = np.nan_to_num(vol)
    return ChainRows(t.path, FORMAT, make_label(FORMAT, t.path, suffix), np.full(2 * n, und, dtype=object), as_of2,
                     exp2, k2, is_call, oi, two(t.lines), np.concatenate([civ, piv]), gamma=gamma, spot=two(spot),
                     spot_kind="UNDERLYING_LAST", notes=notes, zero_oi_note=False)
