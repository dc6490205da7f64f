"""Checking what a user asked for and turning it into run options, once for the CLI and the Python API.

Both faces call these with the user's own values; messages name the argument the way that face spells
it (`flag="--"` gives "--days must be ...", `flag=""` gives "days must be ..."), so a CLI user and a
Python user read the same rule in their own words. Every check raises BadInput before anything runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from gexhistory.calendar import last_completed_session, window_for_days
from gexhistory.config import RATE_MAX, SEED_MAX, parse_symbols
from gexhistory.errors import BadInput
from gexhistory.pipeline.runs import BackfillOptions

MAX_DAYS = 20000  # about 55 years: more is a typo, not a request
DEFAULT_DAYS = 365


def parse_date(value: str | dt.date | None, name: str) -> dt.date | None:
    """A date from 'YYYY-MM-DD', a `datetime.date` or a `datetime.datetime` (its date); None stays None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):  # a datetime is a date too: test it first
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise BadInput(f"{name} {value!r} is not a date (expected YYYY-MM-DD)") from None


def symbol_list(symbols: str | Sequence[str]) -> list[str]:
    """'spy,QQQ' or ['spy', 'QQQ'] -> ['SPY', 'QQQ']; malformed or missing symbols are bad input."""
    if isinstance(symbols, str):
        return parse_symbols(symbols)
    if not all(isinstance(s, str) for s in symbols):
        raise BadInput(f"symbols must be strings, got {list(symbols)!r}")
    return parse_symbols(",".join(symbols))


def resolve_window(days: int | None, start: str | dt.date | None, end: str | dt.date | None,
                   *, flag: str = "--") -> tuple[dt.date, dt.date]:
    """`days` (calendar days ending at the last completed session) or `start`/`end`, both inclusive.

    Without `start`, the window starts DEFAULT_DAYS before the last completed session; without `end`,
    it ends at the last completed session. A later `end` is bad input: that session is not over.
    """
    if days is not None and start is not None:
        raise BadInput(f"give either {flag}days or {flag}start/{flag}end, not both")
    last = last_completed_session().date
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, int) or days < 1 or days > MAX_DAYS:
            raise BadInput(f"{flag}days must be between 1 and {MAX_DAYS}, got {days}")
        return window_for_days(days)
    d_start = parse_date(start, f"{flag}start")
    d_end = parse_date(end, f"{flag}end") or last
    if d_start is None:
        d_start, _ = window_for_days(DEFAULT_DAYS)
    if d_end < d_start:
        raise BadInput(f"{flag}end {d_end} is before {flag}start {d_start}")
    if d_end > last:
        raise BadInput(f"{flag}end {d_end} is after the last completed session {last}")
    return d_start, d_end


def check_rate(rate: float | None, flag: str = "--") -> None:
    """A provider request rate: None (the configured one) or a number of requests per minute in (0, RATE_MAX]."""
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= RATE_MAX):
        raise BadInput(f"{flag}rate must be a number of requests per minute above 0 and at most {RATE_MAX:g}, "
                       f"got {rate}")


def backfill_options(symbols: str | Sequence[str], *, days: int | None = None, start: str | dt.date | None = None,
                     end: str | dt.date | None = None, source: str = "auto", seed: int = 42, force: bool = False,
                     db: str | None = None, bars: str | None = None, rate: float | None = None, jobs: int = 1,
                     batch_sessions: int = 250, flag: str = "--", **more) -> BackfillOptions:
    """The checked options of one backfill; with neither `days` nor `start`/`end`, the last DEFAULT_DAYS.

    `more` passes the options only Python callers give (conventions, model, source_factory) unchanged.
    """
    names = symbol_list(symbols)
    check_rate(rate, flag)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_MAX:
        raise BadInput(f"{flag}seed must be a whole number from 0 to 2**64-1, got {seed!r}")
    if isinstance(batch_sessions, bool) or not isinstance(batch_sessions, int) or not 1 <= batch_sessions <= 100_000:
        name = "--batch-sessions" if flag else "batch_sessions"  # the option's and the argument's spelling
        raise BadInput(f"{name} must be between 1 and 100000, got {batch_sessions!r}")
    if not isinstance(source, str):
        raise BadInput(f"{flag}source must be a name such as 'auto' or 'synthetic', got {source!r}")
    if days is None and start is None and end is None:
        days = DEFAULT_DAYS
    d_start, d_end = resolve_window(days, start, end, flag=flag)
    return BackfillOptions(names, d_start, d_end, source=source.lower(), seed=seed, force=bool(force), db=db,
                           bars=bars, rate=rate, jobs=jobs, batch_sessions=batch_sessions, **more)
