"""Request parameters (symbol, days, dates) checked the same way by the pages and the API."""

from __future__ import annotations

import datetime as dt

from gexhistory.config import SYMBOL_RE
from gexhistory.web.views import DEFAULT_ROLLING, ROLLING_WINDOWS, NotFound


class BadRequest(Exception):
    """A malformed query parameter: answered 400 with the reason."""


def parse_symbol(raw: str | None, known: list[str]) -> str:
    if raw is None:
        return "SPY" if "SPY" in known else known[0]
    sym = raw.strip().upper()
    if not SYMBOL_RE.match(sym) or sym not in known:
        raise NotFound(f"unknown symbol {raw!r}: stored symbols are {', '.join(known) or 'none'}")
    return sym


def parse_days(raw: str | None, default: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    if raw.lower() == "all":
        return None
    try:
        days = int(raw)
    except ValueError:
        raise BadRequest(f"days must be a number of days or 'all', got {raw!r}") from None
    if not 1 <= days <= 20000:
        raise BadRequest(f"days must be between 1 and 20000, got {days}")
    return days


def parse_date(raw: str | None, name: str) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be YYYY-MM-DD, got {raw!r}") from None


def parse_window(raw: str | None) -> int:
    """Signals per rolling win-rate window: one of ROLLING_WINDOWS."""
    if raw is None or raw == "":
        return DEFAULT_ROLLING
    if raw not in {str(n) for n in ROLLING_WINDOWS}:
        raise BadRequest(f"window must be one of {', '.join(map(str, ROLLING_WINDOWS))} signals, got {raw!r}")
    return int(raw)
