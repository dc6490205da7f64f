"""Where the database is, which symbols are valid, what the environment says."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

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
# What a listed ticker looks like (the synthetic market and chain files are held to it; pipeline/symbols.py)
LISTED = re.compile(r"^(I:[A-Z]{1,7}|[A-Z]{1,5}([.\-][A-Z]{1,2})?)$")
LISTED_RULE = "1-5 letters, optionally a class suffix such as BRK.B; indices as I:SPX"


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


PG_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def database_url(db: str | None = None) -> str:
    """--db, else DATABASE_URL, else DATABASE_PATH, else ./gex_copilot.db, as a SQLAlchemy URL.

    An empty --db, and a PostgreSQL URL that names no database, are bad input: the first would
    otherwise fall through to ./gex_copilot.db, the second to whatever database libpq defaults to.
    A password holding '@', ':' or '/' is percent-encoded, so that every parser after this one (SQLAlchemy,
    libpq, redact_url) splits the URL where the user meant.
    """
    if db is not None and not db.strip():
        raise BadInput("--db is empty: give a database file path or a postgresql://user@host/NAME URL")
    value = db or os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_PATH") or DEFAULT_DB_FILE
    if value.startswith(PG_SCHEMES):
        url = "postgresql+psycopg://" + _quoted_userinfo(value.split("://", 1)[1])
        if not urlsplit(url).path.strip("/"):
            raise BadInput(f"database URL {redact_url(value)!r} names no database: add /NAME after the host "
                           "(libpq would otherwise pick one for you)")
        return url
    if value.startswith("sqlite:///"):
        return value
    if "://" in value:
        raise BadInput(f"unsupported database URL scheme in {redact_url(value)!r}: use a file path or postgresql://")
    return "sqlite:///" + str(Path(value).expanduser().absolute())


def _quoted_userinfo(rest: str) -> str:
    """`rest` (the URL after '://') with its user name and password percent-encoded. The user
    information ends at the last '@' before the query: a host name never holds one, a password may."""
    query = rest.find("?")
    head = rest if query < 0 else rest[:query]
    userinfo, at, hostpart = head.rpartition("@")
    if not at:
        return rest
    user, colon, password = userinfo.partition(":")
    encoded = quote(unquote(user), safe="") + (":" + quote(unquote(password), safe="") if colon else "")
    return encoded + "@" + hostpart + rest[len(head):]


def redact_url(url: str) -> str:
    """The URL with its password, if any, replaced by ***: split by urllib's parser after the user
    information is percent-encoded, so a password holding '@' or ':' is hidden whole. Anything that is
    not a URL (a file path) is returned as it is."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    try:
        parts = urlsplit(f"{scheme}://{_quoted_userinfo(rest)}")
        password = parts.password
    except ValueError:  # not a URL urllib can read (a bad port): hide everything before the host
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url
    if password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


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
