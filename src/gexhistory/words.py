"""Counts in messages: "1 session", "2 sessions", "1,004 snapshots"; "a, b and 1,002 more".

Every layer prints counts (store's health checks, the pipeline's notes, the CLI's summaries), so the
rule lives on the ground floor, with nothing imported.
"""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`n` and the noun that agrees with it; `nouns` for a plural that is not noun + "s"."""
    word = noun if n == 1 else (nouns or noun + "s")
    return f"{n:,} {word}"


def first_of(items, shown: int, sep: str = ", ") -> str:
    """The first `shown` of `items` (as str) joined by `sep`, and how many more there are."""
    more = len(items) - shown
    return sep.join(map(str, items[:shown])) + (f" and {more:,} more" if more > 0 else "")
