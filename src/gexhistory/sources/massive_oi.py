"""Massive's daily open interest per contract: `GET /options/v1/open-interest`, fetched and checked.

Massive documents it (docs/rest/options/analytics/open-interest-by-contract) as one row per contract
per trading day, as OPRA reports it, each with the contract's underlying, OCC root, contract type,
expiration date, strike and open interest; filtered by `ticker` or `root` (e.g. SPXW) and by `date`,
the session each figure is for (published the next morning, so the latest is the previous session's).
There is no implied vol and no price in it.

What this module relies on, and what it checks, so that an answer it misreads is refused rather than
stored:
- the records in `results`, further pages by `next_url` (every Massive list endpoint; MassiveClient);
- each record's `ticker`, the OCC option symbol (O:SPXW260123C05000000: root, YYMMDD, C/P, strike x
  1000 in eight digits) that the `ticker` filter takes too: root, expiry, right and strike are read
  from it. Where a record also names `contract_type`, `expiration_date` or `strike_price`, they must
  agree with the symbol;
- `open_interest`, a count from 0 to below COUNT_MAX;
- `date` (when the record has one) must be the session asked for, and the symbol's root the root asked
  for: an answer for another day or root (a filter the server did not apply) is never stored as this one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from gexhistory.config import COUNT_MAX, env_float
from gexhistory.errors import ProviderError
from gexhistory.words import first_of, plural

PATH = "/options/v1/open-interest"
# Records per page asked for: the maximum of Massive's other list endpoints; a plan or endpoint that caps it
# lower answers HTTP 400 with its own message, which the run prints (MASSIVE_OI_PAGE_LIMIT sets another).
PAGE_LIMIT = 50_000
# The roots each index's options trade under today (sources/chains/roots.py says which settle at the
# open); any other symbol's options trade under its own name.
INDEX_ROOTS = {"SPX": ("SPX", "SPXW"), "NDX": ("NDX", "NDXP"), "RUT": ("RUT", "RUTW"), "VIX": ("VIX", "VIXW")}
OCC = r"^O:([A-Z]{1,6}[0-9]?)([0-9]{6})([CP])([0-9]{8})$"
_OCC = re.compile(OCC)


def roots_of(symbol: str) -> tuple[str, ...]:
    """The OCC roots whose open interest makes up `symbol`'s chain."""
    return INDEX_ROOTS.get(symbol, (symbol,))


@dataclass
class OpenInterest:
    """One root's contracts on one session, as Massive reported their open interest."""

    root: str
    date: dt.date
    expiry: np.ndarray  # datetime64[D]
    is_call: np.ndarray
    strike: np.ndarray
    oi: np.ndarray

    def __len__(self) -> int:
        return int(self.strike.size)


def fetch(client, root: str, day: dt.date) -> OpenInterest:
    """Every contract of `root` with its open interest at the end of session `day`, all pages."""
    limit = int(env_float("MASSIVE_OI_PAGE_LIMIT", PAGE_LIMIT, 1, 1_000_000))
    results = client.aggregates(PATH, {"root": root, "date": day.isoformat(), "limit": str(limit)})
    return parse(results, root, day)


def parse(results: list[dict], root: str, day: dt.date) -> OpenInterest:
    """Records -> arrays, or ProviderError naming the first record that is not what was asked for."""
    where = f"massive: {PATH} ({root}, {day})"
    tickers = [r.get("ticker") if isinstance(r, dict) else None for r in results]
    found = [_OCC.match(t) if isinstance(t, str) else None for t in tickers]
    bad = [i for i, m in enumerate(found) if m is None]
    if bad:
        raise ProviderError(f"{where}: record {bad[0] + 1} has no OCC option symbol in `ticker` "
                            f"({str(tickers[bad[0]])[:40]!r})")
    parts = [m.groups() for m in found]  # type: ignore[union-attr]
    other = [i for i, g in enumerate(parts) if g[0] != root]
    if other:
        raise ProviderError(f"{where}: answered with root {parts[other[0]][0]} ({tickers[other[0]]}): "
                            f"the root filter was not applied; nothing stored")
    dates = {str(r.get("date"))[:10] for r in results if r.get("date") is not None}
    if dates - {day.isoformat()}:
        raise ProviderError(f"{where}: answered with open interest for {min(dates - {day.isoformat()})}: "
                            f"the date filter was not applied; nothing stored")
    n = len(parts)
    expiry = np.array([f"20{g[1][:2]}-{g[1][2:4]}-{g[1][4:]}" for g in parts], dtype="datetime64[D]") \
        if n else np.empty(0, dtype="datetime64[D]")
    is_call = np.array([g[2] == "C" for g in parts], dtype=bool)
    strike = np.array([int(g[3]) for g in parts], dtype=float) / 1000.0
    oi = np.array([_count(r.get("open_interest")) for r in results], dtype=float)
    wrong = ~(np.isfinite(oi) & (oi >= 0) & (oi < COUNT_MAX))
    if wrong.any():
        i = int(np.argmax(wrong))
        raise ProviderError(f"{where}: {tickers[i]} has open_interest {results[i].get('open_interest')!r}, "
                            f"not a count")
    _agrees(results, tickers, expiry, is_call, strike, where)
    return OpenInterest(root, day, expiry, is_call, strike, oi)


def _agrees(results, tickers, expiry, is_call, strike, where) -> None:
    """A record's own contract_type, expiration_date and strike_price, where it has them, are its symbol's."""
    for name, value in (("contract_type", lambda i: "call" if is_call[i] else "put"),
                        ("expiration_date", lambda i: str(expiry[i])),
                        ("strike_price", lambda i: float(strike[i]))):
        for i, r in enumerate(results):
            given = r.get(name)
            if given is None:
                continue
            want = value(i)
            same = _same_number(given, want) if name == "strike_price" else str(given).lower()[:10] == want
            if not same:
                raise ProviderError(f"{where}: {tickers[i]} has {name} {given!r}, its symbol says {want!r}")


def _same_number(given, want: float) -> bool:
    try:
        return abs(float(given) - want) < 1e-6
    except (TypeError, ValueError):
        return False


def _count(value) -> float:
    """A count from JSON (an integer, or a float such as 1200.0); NaN for anything else."""
    if isinstance(value, bool) or value is None:
        return np.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return np.nan
    return out if np.isfinite(out) and out == np.floor(out) else np.nan


def note_empty(empty: list[dt.date]) -> str:
    """What a run says of the sessions Massive had no open interest for."""
    return (f"{plural(len(empty), 'session')} without open interest from Massive ({first_of(empty, 3)}): before the "
            f"plan's history, or not yet published; left as they were")
