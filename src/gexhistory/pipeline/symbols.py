"""Guarding the synthetic market against typed-in mistakes.

A provider refuses a ticker it does not list; the synthetic market invents prices for any name, so a
typo (`QQQQ` for `QQQ`) would otherwise become a year of plausible-looking rows without a word. With
the synthetic source, then:
- a name that cannot be a listed ticker (1-5 letters, optionally a share-class suffix such as BRK.B or
  BF-B; indices as I:SPX) is refused before anything is written, with the nearest names as a hint;
- a name the database has never held is announced before the work (`QQQQ: new symbol, synthetic
  prices`), with the nearest stored or well-known name when one is close.
"""

from __future__ import annotations

import difflib

from gexhistory.config import LISTED, LISTED_RULE
from gexhistory.errors import BadInput
from gexhistory.store import writes
from gexhistory.store.queries import symbols as stored_symbols
from gexhistory.store.readonly import open_readonly



def close_names(symbol: str, candidates) -> list[str]:
    """Up to two names from `candidates` that `symbol` is probably a mistyping of."""
    return difflib.get_close_matches(symbol, sorted(set(candidates) - {symbol}), n=2, cutoff=0.6)


def _well_known() -> list[str]:
    from gexhistory.sources.synthetic import LEVELS  # lazy: numpy; needed only once a symbol is new or refused

    return list(LEVELS)


def _stored_readonly(db: str | None) -> list[str]:
    """The stored symbols, read without creating or changing anything (none when there is no database)."""
    try:
        engine = open_readonly(db)
        if engine is None:
            return []
        try:
            return stored_symbols(engine)
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - only a hint is lost; the refusal itself stands
        return []


def _hint(symbol: str, candidates) -> str:
    near = close_names(symbol, candidates)
    return f"did you mean {' or '.join(near)}?" if near else ""


def refuse_unlisted(symbols: list[str], db: str | None) -> None:
    """BadInput when a symbol cannot be a listed ticker; called before the database is opened for writing."""
    bad = [s for s in symbols if not LISTED.match(s)]
    if not bad:
        return
    known = [*_stored_readonly(db), *_well_known()]
    s = bad[0]
    hint = _hint(s, known)
    raise BadInput(f"{s} does not look like a listed ticker ({LISTED_RULE}); the synthetic market would invent "
                   f"prices for it" + (f": {hint}" if hint else ": check the spelling"))


def new_symbols(engine, symbols: list[str]) -> list[str]:
    """The symbols of `symbols` the database has never held (no snapshot, no daily summary)."""
    held = writes.held_symbols(engine, symbols)
    return [s for s in symbols if s not in held]


def new_symbol_note(symbol: str, engine) -> str:
    """`QQQQ: new symbol, synthetic prices`, with the nearest stored or well-known name when one is close
    (none for a well-known name itself: SPY is not a mistyped SPX)."""
    known = _well_known()
    hint = "" if symbol in known else _hint(symbol, [*stored_symbols(engine), *known])
    return f"{symbol}: new symbol, synthetic prices" + (f" ({hint})" if hint else "")
