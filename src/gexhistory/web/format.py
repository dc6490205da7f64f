"""Number formatting shared by templates and tests: $1.23B, 12.3%, +0.45%, $512.34."""

from __future__ import annotations

import math

from gexhistory.words import plural

DASH = "—"


def _bad(v) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def money_short(v, digits: int = 2) -> str:
    """Dollar amounts of GEX: -$1.23B, $456.70M, $12.30K."""
    if _bad(v):
        return DASH
    sign = "-" if v < 0 else ""
    a = abs(float(v))
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if a >= div:
            return f"{sign}${a / div:,.{digits}f}{suffix}"
    return f"{sign}${a:,.{digits}f}"


def price(v, digits: int = 2) -> str:
    return DASH if _bad(v) else f"${float(v):,.{digits}f}"


def pct(v, digits: int = 1) -> str:
    """A value already in percent: 12.3%."""
    return DASH if _bad(v) else f"{float(v):.{digits}f}%"


def signed_pct(v, digits: int = 2) -> str:
    if _bad(v):
        return DASH
    v = round(float(v), digits) or 0.0  # no "-0.00%": a move that rounds to zero has no sign
    return f"{v:+.{digits}f}%" if v else f"{0:.{digits}f}%"


def frac_pct(v, digits: int = 1) -> str:
    """A fraction shown as percent (implied volatility 0.182 -> 18.2%)."""
    return DASH if _bad(v) else f"{float(v) * 100:.{digits}f}%"


def num(v, digits: int = 2) -> str:
    return DASH if _bad(v) else f"{float(v):,.{digits}f}"


def integer(v) -> str:
    return DASH if _bad(v) else f"{int(v):,d}"


def count(v, noun: str, nouns: str | None = None) -> str:
    """"1 signal", "12 signals": the noun agrees with the number."""
    return DASH if _bad(v) else plural(int(v), noun, nouns)


def corr(v) -> str:
    return DASH if _bad(v) else f"{float(v):+.2f}"


def sign_class(v) -> str:
    """CSS class for a signed number: green up, red down."""
    if _bad(v) or v == 0:
        return ""
    return "up" if v > 0 else "down"


FILTERS = {"gex": money_short, "price": price, "pct": pct, "spct": signed_pct, "fpct": frac_pct,
           "num": num, "int": integer, "corr": corr, "count": count}
