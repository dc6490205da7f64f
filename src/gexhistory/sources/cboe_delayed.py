"""Cboe's public delayed quotes: one underlying's whole option chain as JSON, no key, fetched and parsed.

`GET {CBOE_BASE_URL}/api/global/delayed_quotes/options/{SYMBOL}.json` (default base https://cdn.cboe.com);
index symbols take a leading underscore (`_SPX`, `_NDX`, `_RUT`, `_VIX`, `_XSP` ...). The answer:

    {"timestamp": "2025-01-10 11:07:42",            New York wall-clock time of the quotes
     "data": {"symbol": "_SPX", "current_price": 5850.1, "close": ..., "prev_day_close": ..., ...,
              "options": [{"option": "SPXW250110C05900000",   OSI: root, yymmdd, C/P, strike x 1000
                           "bid", "ask", "iv", "open_interest", "volume", "delta", "gamma",
                           "last_trade_price", "theo", ...}, ...]}}

Quotes are delayed (about 15 minutes). Nothing is derived here (pipeline/cboe_snapshot.py derives the
IVs Cboe left at zero and builds the chain): this module says what the answer holds, or why it is
unusable. An unknown symbol is bad input (its CDN answers 403 or 404 for a chain it does not publish);
network faults, 5xx, 429 and bodies that are not the JSON above may pass on retry: they are retried a
few times, then end the symbol with a ProviderError.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from dataclasses import dataclass

import numpy as np

from gexhistory.calendar import ET
from gexhistory.config import env_float
from gexhistory.errors import BadInput, ProviderError
from gexhistory.version import __version__

CHAIN_SOURCE = "cboe_delayed"
DATA_SOURCE = "cboe"
FORMAT = "cboe_delayed_json"
DEFAULT_BASE_URL = "https://cdn.cboe.com"
PATH = "/api/global/delayed_quotes/options/{symbol}.json"
# Cboe files indices (cash-settled index options) under an underscore; everything else by its ticker.
INDEXES = frozenset({"SPX", "NDX", "RUT", "VIX", "XSP", "DJX", "OEX", "XEO", "XND", "MRUT", "NANOS"})
CONTRACT_FIELDS = ("option", "bid", "ask", "iv", "open_interest")  # every contract must carry these keys
UNKNOWN_SYMBOL = (403, 404)  # the CDN's answers for a file it does not hold
OSI = r"^([A-Z][A-Z0-9]{0,5})(\d{6})([CP])(\d{8})$"


@dataclass
class CboeQuotes:
    """One underlying's delayed chain as Cboe gave it: per contract arrays in answer order, nothing
    dropped but the contracts whose option symbol is not OSI (counted in `malformed`)."""

    symbol: str  # as stored: 'SPX', 'SPY'
    url: str
    timestamp: dt.datetime  # aware, America/New_York
    spot: float  # data.current_price
    listed: int  # contracts in the answer
    malformed: int  # contracts whose option symbol is not an OSI symbol (left out)
    root: np.ndarray  # object: 'SPX', 'SPXW', 'SPY1' ...
    expiry: np.ndarray  # datetime64[D]
    strike: np.ndarray
    is_call: np.ndarray
    oi: np.ndarray  # NaN where Cboe gave none
    iv: np.ndarray  # NaN where blank, zero or not a number
    bid: np.ndarray
    ask: np.ndarray
    gamma: np.ndarray  # Cboe's own gamma (NaN where none)


def cboe_symbol(symbol: str) -> str:
    """The name Cboe files `symbol` under: 'SPX' and 'I:SPX' -> '_SPX', 'SPY' -> 'SPY'."""
    plain = stored_symbol(symbol)
    return f"_{plain}" if plain in INDEXES else plain


def stored_symbol(symbol: str) -> str:
    """The name the snapshot is stored under: an index without its 'I:' or '_' prefix ('SPX')."""
    s = symbol.strip().upper()
    return s[2:] if s.startswith("I:") else s.lstrip("_")


def base_url() -> str:
    return (os.environ.get("CBOE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


class CboeClient:
    """One HTTP client for a run's symbols; retries what may pass, within bounds set by the environment
    (CBOE_MAX_TRIES, default 3; CBOE_BACKOFF_SECONDS, default 1; CBOE_TIMEOUT_SECONDS, default 30)."""

    def __init__(self) -> None:
        import httpx  # lazy: only the Cboe snapshot opens a connection

        self.base = base_url()
        self.tries = int(env_float("CBOE_MAX_TRIES", 3, 1, 20))
        self.backoff = env_float("CBOE_BACKOFF_SECONDS", 1.0, 0.0, 300.0)
        timeout = env_float("CBOE_TIMEOUT_SECONDS", 30.0, 0.1, 600.0)
        self._httpx = httpx
        self._http = httpx.Client(timeout=timeout, follow_redirects=True,
                                  headers={"Accept": "application/json", "User-Agent": f"gexhistory/{__version__}"})

    def close(self) -> None:
        self._http.close()

    def fetch(self, symbol: str) -> CboeQuotes:
        """`symbol`'s delayed chain, parsed (BadInput for a symbol Cboe has no chain for)."""
        name = cboe_symbol(symbol)
        url = self.base + PATH.format(symbol=name)
        why = ""
        for attempt in range(self.tries):
            if attempt:  # jittered exponential backoff: 1, 2, 4 ... x CBOE_BACKOFF_SECONDS
                time.sleep(self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
            try:
                resp = self._http.get(url)
            except self._httpx.TimeoutException:
                why = "no answer within CBOE_TIMEOUT_SECONDS"
                continue
            except self._httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'connection failed'}"
                continue
            if resp.status_code in UNKNOWN_SYMBOL:
                raise BadInput(f"Cboe publishes no delayed quotes for {stored_symbol(symbol)} (HTTP {resp.status_code} "
                               f"for {url}): not an underlying with options listed at Cboe")
            if resp.status_code == 429 or resp.status_code >= 500:
                why = f"HTTP {resp.status_code}"
                continue
            if resp.status_code != 200:
                raise ProviderError(f"cboe: {stored_symbol(symbol)}: HTTP {resp.status_code} for {url}")
            try:
                payload = json.loads(resp.content)
            except ValueError:
                why = "the answer is not JSON (cut short, or an error page)"
                continue
            return parse(stored_symbol(symbol), payload, url)
        raise ProviderError(f"cboe: {stored_symbol(symbol)}: {why} after {self.tries} "
                            f"{'try' if self.tries == 1 else 'tries'} ({url})")


def _field(payload, *path: str):
    node = payload
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def parse_timestamp(raw) -> dt.datetime | None:
    """'YYYY-MM-DD HH:MM:SS' (or ISO with 'T', fractions, an offset) as New York time; None if unusable."""
    try:
        t = dt.datetime.fromisoformat(str(raw).strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return t.replace(tzinfo=ET) if t.tzinfo is None else t.astimezone(ET)


def _numbers(options: list[dict], key: str) -> np.ndarray:
    import pandas as pd  # lazy: the snapshot alone parses this

    return pd.to_numeric(pd.Series([o.get(key) for o in options], dtype=object), errors="coerce").to_numpy(float)


def parse(symbol: str, payload, url: str) -> CboeQuotes:
    """The answer's contracts as arrays; ProviderError naming what is missing when it is not the shape
    above (no timestamp, no price, no options, a contract without one of CONTRACT_FIELDS)."""
    import pandas as pd  # lazy: the snapshot alone parses this

    where = f"cboe: the {symbol} answer ({url})"
    stamp = parse_timestamp(_field(payload, "timestamp")) if isinstance(payload, dict) else None
    if stamp is None:
        raise ProviderError(f"{where} has no usable timestamp")
    options = _field(payload, "data", "options")
    if not isinstance(options, list):
        raise ProviderError(f"{where} has no data.options list")
    if not options:
        raise ProviderError(f"{where} lists no options (an empty chain)")
    price = _field(payload, "data", "current_price")
    spot = float(price) if isinstance(price, (int, float)) and not isinstance(price, bool) else float("nan")
    if not np.isfinite(spot) or spot <= 0:
        raise ProviderError(f"{where} has no data.current_price (got {price!r})")
    if not all(isinstance(o, dict) for o in options):
        raise ProviderError(f"{where} has an entry of data.options that is not an object")
    for key in CONTRACT_FIELDS:
        lacking = next((o for o in options if key not in o), None)
        if lacking is not None:
            raise ProviderError(f"{where}: contract {str(lacking.get('option', '?'))[:30]} has no {key!r} field")
    parts = pd.Series([str(o["option"]).strip() for o in options]).str.extract(OSI)
    ok = np.array(parts[0].notna(), dtype=bool)  # a writable copy
    if not ok.any():
        raise ProviderError(f"{where}: no option symbol is an OSI symbol (e.g. {str(options[0]['option'])[:30]!r})")
    parts = parts[ok]
    expiry = pd.to_datetime(parts[1], format="%y%m%d", errors="coerce")
    good_day = expiry.notna().to_numpy()
    ok[np.flatnonzero(ok)[~good_day]] = False
    parts, expiry = parts[good_day], expiry[good_day]
    sel = np.flatnonzero(ok)

    def take(key: str) -> np.ndarray:
        return _numbers(options, key)[sel]

    iv = take("iv")
    return CboeQuotes(
        symbol=symbol, url=url, timestamp=stamp, spot=spot, listed=len(options), malformed=int((~ok).sum()),
        root=parts[0].to_numpy(dtype=object), expiry=expiry.to_numpy().astype("datetime64[D]"),
        strike=parts[3].astype(float).to_numpy() / 1000.0, is_call=(parts[2] == "C").to_numpy(),
        oi=take("open_interest"), iv=np.where(iv > 0, iv, np.nan), bid=take("bid"), ask=take("ask"),
        gamma=take("gamma"),
    )
