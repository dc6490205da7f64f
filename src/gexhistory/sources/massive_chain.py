"""Massive's option chain snapshot: `GET /v3/snapshot/options/{underlying}` fetched and parsed into an
OptionChain (a real chain: chain_source 'massive_snapshot', data_source 'polygon').

The endpoint lists every contract with its details (type, expiry, strike), greeks, implied volatility,
open interest and the underlying's price, 250 per page with `next_url`. Contracts without implied
volatility (no quote) cannot be given a gamma: they are left out of the chain, and counted. Each expiry's
close is its session's close (the session before, for an expiry date that is a holiday).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from gexhistory.calendar import session_on, sessions_before
from gexhistory.engine.chain import OptionChain
from gexhistory.errors import BadInput, WorkFailed
from gexhistory.sources.massive import MassiveSource
from gexhistory.sources.select import api_key

CHAIN_SOURCE = "massive_snapshot"
DATA_SOURCE = "polygon"
PAGE_LIMIT = 250  # the endpoint's maximum


def chain_client(rate: float | None = None):
    """The Massive client (rate limiter, retries, key redaction) for the configured key; no key is bad input."""
    key = api_key()
    if not key:
        raise BadInput("snapshot needs a Massive/Polygon API key: set POLYGON_API_KEY or MASSIVE_API_KEY "
                       "(environment or .env), or take Cboe's delayed quotes, which need none: --source cboe")
    return MassiveSource.from_env(key, rate).client


def fetch_chain(client, symbol: str) -> list[dict]:
    """Every contract of `symbol`'s chain snapshot, all pages."""
    return client.aggregates(f"/v3/snapshot/options/{symbol}", {"limit": str(PAGE_LIMIT)})


def _expiry_close(day: dt.date) -> float:
    """POSIX seconds of the close of the session an option expiring on `day` stops trading in."""
    s = session_on(day)
    if s is None:  # an expiry date that is a holiday: the contract's last session is the one before
        before = sessions_before(day, 1)
        if not before:
            raise WorkFailed(f"no NYSE session on or before expiry {day}")
        s = before[0]
    return s.close.timestamp()


def chain_from_results(symbol: str, results: list[dict], as_of: dt.date) -> tuple[OptionChain, float, int]:
    """The chain, the underlying's price, and how many contracts had no implied volatility."""
    kinds, expiries, strikes, ois, ivs, gammas, prices = [], [], [], [], [], [], []
    for r in results:
        d = r.get("details") or {}
        kind = str(d.get("contract_type", "")).lower()
        try:
            expiry = dt.date.fromisoformat(str(d.get("expiration_date")))
            strike = float(d["strike_price"])
        except (KeyError, TypeError, ValueError):
            raise WorkFailed(f"massive: a {symbol} chain contract has no usable expiry/strike "
                             f"({str(d.get('ticker', '?'))[:40]})") from None
        if kind not in ("call", "put"):
            raise WorkFailed(f"massive: a {symbol} chain contract has contract_type {kind[:20]!r}")
        kinds.append(kind == "call")
        expiries.append(expiry)
        strikes.append(strike)
        ois.append(_num(r.get("open_interest"), 0.0))
        ivs.append(_num(r.get("implied_volatility"), np.nan))
        gammas.append(_num((r.get("greeks") or {}).get("gamma"), np.nan))
        price = (r.get("underlying_asset") or {}).get("price")
        if price is not None:
            prices.append(_num(price, np.nan))
    prices = [p for p in prices if np.isfinite(p) and p > 0]
    if not results:
        raise WorkFailed(f"massive: the option chain snapshot of {symbol} is empty (no listed options, or an unknown ticker)")
    if not prices:
        raise WorkFailed(f"massive: the {symbol} chain snapshot has no underlying price "
                         "(underlying_asset.price; your plan may not include the underlying's quotes)")
    iv = np.array(ivs, dtype=float)
    ok = np.isfinite(iv) & (iv > 0)
    closes = {d: _expiry_close(d) for d in set(expiries)}
    chain = OptionChain(
        underlying=symbol, as_of=as_of,
        expiry=np.array(expiries, dtype="datetime64[D]")[ok],
        expiry_close=np.array([closes[d] for d in expiries], dtype=float)[ok],
        strike=np.array(strikes, dtype=float)[ok],
        is_call=np.array(kinds, dtype=bool)[ok],
        open_interest=np.array(ois, dtype=float)[ok],
        iv=iv[ok], source=CHAIN_SOURCE, gamma=np.array(gammas, dtype=float)[ok],
    )
    return chain, float(prices[0]), int((~ok).sum())


def _num(value, default: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default
