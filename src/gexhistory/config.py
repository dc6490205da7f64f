"""Where the database is, which symbols are valid, what the environment says."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from gexhistory.errors import BadInput

DEFAULT_DB_FILE = "gex_copilot.db"

# What any market's numbers stay within. The dearest listed share has traded near $750,000 and the
# largest daily volumes and open interests are below 1e10: a value past these bounds is a typo, a unit
# error or a broken feed, and stored it would overflow GEX (price squared times open interest) to inf.
PRICE_MAX = 1e7
PRICE_MIN = 1e-4  # the smallest tick sub-penny shares trade at; below it spot squared underflows GEX to 0
COUNT_MAX = 1e12
RATE_MAX = 1e6  # requests per minute: more is no limit at all, which the provider would answer with 429s
SEED_MAX = 2**64  # the synthetic market's seed: a non-negative 64-bit number
SYMBOL_RE = re.compile(r"^(I:)?[A-Z][A-Z0-9.\-]{0,9}$")


def load_dotenv_file() -> None:
    """Read ./.env once; real environment variables win over the file."""
    env_file = Path.cwd() / ".env"
    if env_file.is_file():
        from dotenv import load_dotenv  # lazy: only when a .env file exists

        load_dotenv(env_file, override=False)


def env_float(name: str, default: float, lo: float, hi: float) -> float:
    """A number from the environment variable `name` (unset or blank: `default`), within [lo, hi]."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"{name}={raw!r} is not a number") from None
    if not (lo <= value <= hi) or math.isnan(value):
        raise BadInput(f"{name} must be between {lo:g} and {hi:g}, got {raw}")
    return value


def plausible_price(value: float) -> bool:
    """A finite price of a traded instrument: PRICE_MIN <= value < PRICE_MAX."""
    return math.isfinite(value) and PRICE_MIN <= value < PRICE_MAX


def plausible_count(value: float) -> bool:
    """A finite volume or open interest: 0 <= value < COUNT_MAX."""
    return math.isfinite(value) and 0 <= value < COUNT_MAX


def database_url(db: str | None = None) -> str:
    """--db, else DATABASE_URL, else DATABASE_PATH, else ./gex_copilot.db, as a SQLAlchemy URL."""
    value = db or os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_PATH") or DEFAULT_DB_FILE
    if value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        rest = value.split("://", 1)[1]
        return "postgresql+psycopg://" + rest
    if value.startswith("sqlite:///"):
        return value
    if "://" in value:
        raise BadInput(f"unsupported database URL scheme in {redact_url(value)!r}: use a file path or postgresql://")
    return "sqlite:///" + str(Path(value).expanduser().absolute())


def redact_url(url: str) -> str:
    """Hide a password in a database URL before it is printed."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def parse_symbols(text: str) -> list[str]:
    """'spy, QQQ' -> ['SPY', 'QQQ']; a malformed symbol is bad input."""
    symbols = []
    for raw in text.split(","):
        sym = raw.strip().upper()
        if not sym:
            continue
        if not SYMBOL_RE.match(sym):
            raise BadInput(f"malformed symbol {raw.strip()!r}: expected 1-10 letters, digits, '.' or '-' (indices as I:SPX)")
        if sym not in symbols:
            symbols.append(sym)
    if not symbols:
        raise BadInput("no symbol given")
    return symbols
