"""Option-chain file parsers (README: import-chains). Each format lives in its own module; `detect` picks one from
the header and the module's `parse` turns the file's table into ChainRows: its contracts as the file
gives them. Nothing here derives or writes anything (pipeline/chain_prep.py derives IVs and spots and
builds the chains): a file that is not a chain, or has a malformed row, raises BadInput naming file and
line."""

from __future__ import annotations

from gexhistory.errors import BadInput
from gexhistory.sources.chains import cboe, generic, optionsdx, orats
from gexhistory.sources.chains.common import ChainRows, Table
from gexhistory.sources.chains.reader import read_table

__all__ = ["ChainRows", "Table", "columns_read", "detect", "read_table", "FORMATS"]


MODULES = (cboe, orats, optionsdx, generic)  # tried in this order: the generic CSV's columns are the loosest
FORMATS = "Cboe DataShop Option EOD Summary, ORATS strikes, OptionsDX EOD, generic long CSV"


def detect(table: Table):
    """The format module whose required columns the header has; BadInput when none fits."""
    for mod in MODULES:
        if mod.matches(table.columns):
            return mod
    raise BadInput(f"{table.path}: not an option chain file (header matches none of: {FORMATS}; "
                   f"the generic CSV needs date, underlying, expiration, strike, right, oi, iv)")


def columns_read(header: set[str]) -> dict[str, str] | None:
    """The columns the parser of the format `header` matches reads, where its module lists them
    (READS), each with how the reader may convert it: "number" (the module's NUMBERS), "code" (CODES:
    few distinct values, such as symbols and dates) or "text"; None (read every column as text)
    otherwise."""
    for mod in MODULES:
        if mod.matches(header):
            reads = getattr(mod, "READS", None)
            if reads is None:
                return None
            numbers, codes = getattr(mod, "NUMBERS", set()), getattr(mod, "CODES", set())
            return {c: "number" if c in numbers else "code" if c in codes else "text" for c in reads & header}
    return None
