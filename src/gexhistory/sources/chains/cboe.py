"""Cboe DataShop "Option EOD Summary" files: 26 columns, or 34 with the 15:45 calculations.

Columns used: underlying_symbol, quote_date, root, expiration, strike, option_type, open_interest,
bid_eod/ask_eod, underlying_bid_eod/underlying_ask_eod, and with the calcs implied_volatility_1545
and gamma_1545.

Interpretation:
- A file dated D (quote_date) carries the OI Cboe had at the start of D: OCC's count after D-1's
  close, published that morning. It is D's chain: it drives D's GEX.
- IV: implied_volatility_1545 when the file has it and it is positive (Cboe writes 0 where its
  engine found none); otherwise the IV of the option's end-of-day mid (bid_eod/ask_eod) by Black-
  Scholes at the chain's spot and the run's r and q; otherwise interpolated across strikes of the
  same expiry. Each contract records which (iv_source f/p/i); contracts with no IV at all are dropped
  and counted in the notes, as are contracts with zero OI (they add no gamma). The derivation is
  pipeline/chain_prep.py's: this module reads the columns.
- Spot: the mid of underlying_bid_eod/underlying_ask_eod; index files quote no underlying bid/ask
  (zeros), so their spot is implied by put-call parity on end-of-day mids (labelled "implied").
- Contracts of one expiration and strike under two roots that settle alike (SPXW and SPXQ) are merged:
  OI added, IV OI-weighted; an AM-settled root's (SPX) stay apart from a PM root's (SPXW) of the same
  date (sources/chains/roots.py). `^SPX` style symbols lose the caret.
"""

from __future__ import annotations

import numpy as np

from gexhistory.errors import BadInput
from gexhistory.sources.chains.common import (ChainRows, Table, coded_chain_index, expiry_check, make_label,
                                              session_check, vendor_gamma)

FORMAT = "cboe_datashop"
REQUIRED = {"underlying_symbol", "quote_date", "root", "expiration", "strike", "option_type", "open_interest"}
# Every column parse() reads: the reader converts only these (read_table's keep).
READS = REQUIRED | {"bid_eod", "ask_eod", "underlying_bid_eod", "underlying_ask_eod", "implied_volatility_1545",
                    "gamma_1545"}
NUMBERS = {"strike", "open_interest", "bid_eod", "ask_eod", "underlying_bid_eod", "underlying_ask_eod",
           "implied_volatility_1545", "gamma_1545"}  # read as numbers by the reader
CODES = {"underlying_symbol", "quote_date", "root", "expiration", "option_type"}  # coded by their few values


def matches(columns: set[str]) -> bool:
    return REQUIRED <= columns


def _mid(t: Table, bid_col: str, ask_col: str) -> np.ndarray | None:
    if not {bid_col, ask_col} <= t.columns:
        return None
    bid = t.number(bid_col, required=False, nonneg=True)
    ask = t.number(ask_col, required=False, nonneg=True)
    return np.where((bid > 0) & (ask >= bid), (bid + ask) / 2, np.nan)


def parse(table: Table) -> ChainRows:
    t = table
    calcs = "implied_volatility_1545" in t.columns
    if not calcs and not {"bid_eod", "ask_eod"} <= t.columns:
        raise BadInput(f"{t.path}: Cboe file with neither implied_volatility_1545 nor bid_eod/ask_eod: no IV can be had")
    und = t.mapped("underlying_symbol", _underlying)
    t._report(und == "", "underlying_symbol", und, "is missing")
    as_of = t.date("quote_date")
    expiry = t.date("expiration")
    strike = t.number("strike", positive=True)
    is_call = t.right("option_type")
    oi = t.number("open_interest", nonneg=True)
    file_iv = t.iv("implied_volatility_1545", required=False) if calcs else np.full(len(t), np.nan)
    notes: list[str] = []
    gamma = vendor_gamma(t, "gamma_1545", notes) if "gamma_1545" in t.columns else None
    mid = _mid(t, "bid_eod", "ask_eod")
    umid = _mid(t, "underlying_bid_eod", "underlying_ask_eod")
    t.check()
    expiry_check(t, as_of, expiry, "expiration")
    session_check(t, as_of, "quote_date")
    t.check()

    spots: dict[str, tuple[float, str]] = {}
    # Rows coded by the reader's distinct values (a few thousand), not by a string per row.
    u_values, u_index = t.distinct("underlying_symbol")
    index = coded_chain_index(u_index, np.array([_underlying(u) for u in u_values], dtype=object), as_of)
    if umid is not None:
        codes, chains = index
        for code, v in _medians(codes, umid, len(chains)).items():
            u, d = chains[code]
            spots[f"{u}|{d}"] = (v, "underlying_bid/ask_eod mid")
    roots, root_index = t.distinct("root")
    return ChainRows(t.path, FORMAT, make_label(FORMAT, t.path), und, as_of, expiry, strike, is_call, oi, t.lines,
                     file_iv, gamma=gamma, mid=mid, quoted_spots=spots, group=root_index,
                     group_names=np.asarray(roots, dtype=object), notes=notes, index=index,
                     no_iv_note="with OI but no IV obtainable left out")


def _underlying(symbol: str) -> str:
    return symbol.upper().lstrip("^")  # Cboe writes indices as ^SPX


def _medians(codes: np.ndarray, values: np.ndarray, n: int) -> dict[int, float]:
    """Per code with a finite value: the median of its values. A chain's rows usually repeat one
    underlying quote, so only codes whose values differ are sorted."""
    ok = np.isfinite(values)
    c, v = codes[ok], values[ok]
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(lo, c, v)
    np.maximum.at(hi, c, v)
    out = {int(k): float(lo[k]) for k in np.flatnonzero(lo == hi)}
    varied = (lo < hi)[c]
    if varied.any():
        cv, vv = c[varied], v[varied]
        order = np.lexsort((vv, cv))
        cv, vv = cv[order], vv[order]
        cut = np.flatnonzero(np.r_[True, cv[1:] != cv[:-1], True])
        for a, b in zip(cut[:-1].tolist(), cut[1:].tolist()):
            out[int(cv[a])] = float(np.median(vv[a:b]))
    return dict(sorted(out.items()))
