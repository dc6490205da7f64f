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
from gexhistory.config import COUNT_MAX, PRICE_MAX, PRICE_MIN
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
    _check_plausible(symbol, results, as_of, expiries, strikes, ois, ivs, prices)
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


# Implied volatility as a fraction: 50 is 5,000% a year, past anything quoted even for a day-old meme option.
IV_MAX = 50.0
EXPIRY_YEARS_MAX = 20  # listed options (LEAPS) expire within three years: 20 years off either way is a broken record


def _check_plausible(symbol: str, results: list[dict], as_of: dt.date, expiries: list[dt.date],
                     strikes: list[float], ois: list[float], ivs: list[float], prices: list[float]) -> None:
    """Every contract's numbers within any market's range, else the snapshot is refused whole (a
    broken answer, not a market): strikes and the underlying's price from PRICE_MIN to below
    PRICE_MAX, open interest from 0 to below COUNT_MAX, IV below IV_MAX, expiry within
    EXPIRY_YEARS_MAX years either side of the snapshot. The first contract outside is named."""
    span = dt.timedelta(days=366 * EXPIRY_YEARS_MAX)
    k = np.array(strikes, dtype=float)
    oi = np.array(ois, dtype=float)
    iv = np.array(ivs, dtype=float)
    exp = np.array(expiries, dtype="datetime64[D]")
    checks = (("strike_price", k, ~((k >= PRICE_MIN) & (k < PRICE_MAX))),
              ("open_interest", oi, ~((oi >= 0) & (oi < COUNT_MAX))),
              ("implied_volatility", iv, iv >= IV_MAX),
              ("expiration_date", exp, (exp < np.datetime64(as_of - span)) | (exp > np.datetime64(as_of + span))))
    for name, values, bad in checks:
        if bad.any():
            i = int(np.argmax(bad))
            ticker = str(((results[i].get("details") or {}).get("ticker")) or "?")[:40]
            shown = values[i] if name == "expiration_date" else f"{float(values[i]):g}"
            raise WorkFailed(f"massive: the {symbol} chain snapshot has an implausible {name} {shown} "
                             f"(contract {i + 1}, {ticker})")
    for p in prices:
        if not PRICE_MIN <= p < PRICE_MAX:
            raise WorkFailed(f"massive: the {symbol} chain snapshot has an implausible underlying price {p:g}")


def _num(value, default: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default
