"""ORATS strikes files: one row per (ticker, trade date, expiration, strike) with both the call and the
put. Both spellings are read: the API/history export (ticker, tradeDate, expirDate, strike,
stockPrice, callOpenInterest, putOpenInterest, callMidIv, putMidIv, smvVol, gamma, spotPrice) and the
near-end-of-day SMV files (ticker, trade_date, expirDate, strike, stkPx, cOi, pOi, cMidIv, pMidIv,
smoothSmvVol, gamma, spot_px).

Interpretation:
- A file dated D (tradeDate / trade_date) carries OCC's OI published on the morning of D, so it is
  D's chain and drives D's GEX.
- IV: ORATS's smoothed surface vol (smvVol / smoothSmvVol), one per strike, for call and put alike;
  without it callMidIv/putMidIv; zeros or blanks are interpolated across strikes of the same expiry
  (iv_source 'i'), contracts with no IV at all are dropped and counted in the notes, as are zero-OI
  contracts (pipeline/chain_prep.py derives; this module reads the columns).
- gamma is ORATS's (one per strike: a call's and a put's gamma are equal) and kept as the vendor's.
- Spot: stockPrice / stkPx, the stock price ORATS took its snapshot at (near the close); else
  spotPrice / spot_px.
"""

from __future__ import annotations

import numpy as np

from gexhistory.errors import BadInput
from gexhistory.sources.chains.common import ChainRows, Table, expiry_check, make_label, session_check, vendor_gamma

FORMAT = "orats"


def _cols(t: Table) -> dict[str, str | None]:
    return {
        "date": t.first("tradedate", "trade_date"),
        "call_oi": t.first("callopeninterest", "coi"),
        "put_oi": t.first("putopeninterest", "poi"),
        "smv": t.first("smvvol", "smoothsmvvol"),
        "call_iv": t.first("callmidiv", "cmidiv"),
        "put_iv": t.first("putmidiv", "pmidiv"),
        "spot": t.first("stockprice", "stkpx", "spotprice", "spot_px"),
    }


def matches(columns: set[str]) -> bool:
    return ({"ticker", "expirdate", "strike"} <= columns and bool(columns & {"tradedate", "trade_date"})
            and bool(columns & {"callopeninterest", "coi"}) and bool(columns & {"putopeninterest", "poi"}))


def parse(table: Table) -> ChainRows:
    t = table
    c = _cols(t)
    if c["smv"] is None and (c["call_iv"] is None or c["put_iv"] is None):
        raise BadInput(f"{t.path}: ORATS file without smvVol or callMidIv/putMidIv: no IV to use")
    und = np.array([u.upper() for u in t.text("ticker")], dtype=object)
    t._report(und == "", "ticker", und, "is missing")
    as_of = t.date(c["date"])
    expiry = t.date("expirdate")
    strike = t.number("strike", positive=True)
    coi = t.number(c["call_oi"], nonneg=True)
    poi = t.number(c["put_oi"], nonneg=True)
    if c["smv"] is not None:
        civ = piv = t.iv(c["smv"], required=False)
    else:
        civ, piv = t.iv(c["call_iv"], required=False), t.iv(c["put_iv"], required=False)
    notes: list[str] = []
    gamma = vendor_gamma(t, "gamma", notes) if "gamma" in t.columns else None
    spot = t.number(c["spot"], required=False, positive=True) if c["spot"] else None
    t.check()
    expiry_check(t, as_of, expiry, "expirdate")
    session_check(t, as_of, c["date"])
    t.check()

    two = lambda a: np.concatenate([a, a])  # noqa: E731  (each row is a call and a put)
    is_call = np.r_[np.ones(len(t), bool), np.zeros(len(t), bool)]
    kind = {"stockprice": "stockPrice", "stkpx": "stkPx", "spotprice": "spotPrice", "spot_px": "spot_px"}.get(c["spot"] or "")
    return ChainRows(t.path, FORMAT, make_label(FORMAT, t.path), two(und), two(as_of), two(expiry), two(strike),
                     is_call, np.concatenate([coi, poi]), two(t.lines), np.concatenate([civ, piv]),
                     gamma=two(gamma) if gamma is not None else None, spot=two(spot) if spot is not None else None,
                     spot_kind=kind, notes=notes)
