"""Option-chain file importers (SPEC §4.3). Each format lives in its own module; `detect` picks one
from the header and `read_chain_file` turns a file into ImportedChain records (one per underlying and
as-of date). Nothing here writes anything: a file that is not a chain, or has a malformed row, raises
BadInput naming file and line."""

from __future__ import annotations

from gexhistory.errors import BadInput
from gexhistory.sources.chains.common import ImportedChain, Table, read_table

__all__ = ["ImportedChain", "detect", "read_chain_file", "FORMATS"]


def _modules():
    from gexhistory.sources.chains import cboe, generic, optionsdx, orats

    return [cboe, orats, optionsdx, generic]


FORMATS = "Cboe DataShop Option EOD Summary, ORATS strikes, OptionsDX EOD, generic long CSV"


def detect(table: Table):
    """The format module whose required columns the header has; BadInput when none fits."""
    for mod in _modules():
        if mod.matches(table.columns):
            return mod
    raise BadInput(f"{table.path}: not an option chain file (header matches none of: {FORMATS}; "
                   f"the generic CSV needs date, underlying, expiration, strike, right, oi, iv)")


def read_chain_file(path: str, *, oi_file: str | None = None, volume_as_oi: bool = False,
                    underlying: str | None = None) -> list[ImportedChain]:
    table = read_table(path)
    if len(table) == 0:
        raise BadInput(f"{path}: no contracts (a header and no rows)")
    mod = detect(table)
    if mod.FORMAT == "optionsdx":
        oi_chains = _read_oi_file(oi_file, underlying) if oi_file else None
        chains = mod.parse(table, oi_file=oi_file, oi_chains=oi_chains, volume_as_oi=volume_as_oi,
                           underlying=underlying)
    else:
        chains = mod.parse(table)  # the other formats carry their own OI: --oi-file does not apply
    if not chains:
        raise BadInput(f"{path}: no contract with open interest and an IV")
    return chains


def _read_oi_file(oi_file: str, underlying: str | None) -> list[ImportedChain]:
    """The chains of an OptionsDX OI file: any other format, or a generic file of OI without IVs."""
    from gexhistory.sources.chains import generic

    t = read_table(oi_file)
    if len(t) == 0:
        raise BadInput(f"{oi_file}: no contracts (a header and no rows)")
    if generic.OI_ONLY <= t.columns and not generic.matches(t.columns):
        if "underlying" not in t.columns and not underlying:
            raise BadInput(f"{oi_file}: no underlying column: give --underlying")
        return generic.parse(t, require_iv=False, underlying=underlying)
    mod = detect(t)
    if mod.FORMAT == "optionsdx":
        raise BadInput(f"{oi_file}: an OptionsDX file has no OI to merge")
    return mod.parse(t)
