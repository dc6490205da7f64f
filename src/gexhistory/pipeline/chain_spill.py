"""Parsed chains held on disk instead of in memory: what lets one import take a year of market-wide files.

`import-chains` checks every file before it writes anything, so it holds every file's chains until its
one transaction. As arrays they cost about 125 MiB per market-wide file of a million rows. Past a budget of
held contracts (`hold_contracts()`, GEXHISTORY_IMPORT_HOLD_CONTRACTS), the chains parsed so far, and
every later file's, are packed in their stored form (store/packed.py, ~27 bytes a contract) into a
temporary file, and only a light record of each (SpilledChain) stays in memory. chain_store then
computes and writes them a batch at a time inside the same one transaction, loading each batch back;
the packed form is what it stores anyway, so nothing is packed twice.

Quotedata files are not spilled before chain_union has united the pieces of each chain (one
underlying each: small files); the chains it makes are.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from itertools import groupby

import numpy as np

from gexhistory.errors import BadInput
from gexhistory.pipeline.chain_pack import chain_from_stored, contract_columns
from gexhistory.pipeline.chain_prep import ImportedChain, expiry_close_ts
from gexhistory.pipeline.chain_union import SPLIT_FORMATS

HOLD_ENV = "GEXHISTORY_IMPORT_HOLD_CONTRACTS"
# About 300 MiB of chains as arrays: with the file being parsed (~470 MiB at its peak for a million
# rows), an import of ten market-wide files peaked at 1.0 GiB against 1.7 GiB held in memory
# (benchmarks/import_chains.py --files 10); what grows past that is ~0.5 KB a session.
HOLD_CONTRACTS = 2_000_000


def hold_contracts() -> int:
    """Contracts an import holds in memory before it spills them: GEXHISTORY_IMPORT_HOLD_CONTRACTS,
    else HOLD_CONTRACTS (BadInput for a value that is not a whole number of at least 0)."""
    raw = os.environ.get(HOLD_ENV)
    if not raw:
        return HOLD_CONTRACTS
    try:
        n = int(raw.replace(",", "").replace("_", ""))
    except ValueError:
        n = -1
    if n < 0:
        raise BadInput(f"{HOLD_ENV} must be a whole number of contracts (0 or more), got {raw!r}")
    return n


@dataclass(frozen=True, slots=True)
class ChainKey:
    """What a spilled chain keeps of its OptionChain: its key and size."""

    underlying: str
    as_of: dt.date
    contracts: int

    def __len__(self) -> int:
        return self.contracts


@dataclass(slots=True)
class SpilledChain:
    """An ImportedChain whose contracts wait in a ChainSpill: the same attributes but the arrays
    (`chain` holds only the key and size); `packed()` gives its contracts as stored, load_many the
    ImportedChain back."""

    chain: ChainKey
    fmt: str
    file: str
    label: str
    spill: ChainSpill
    offset: int
    size: int
    stored: int  # contracts in the stored stream (an AM contract beside its PM one shares a row)
    file_spot: float | None = None
    file_spot_kind: str | None = None
    notes: list[str] = field(default_factory=list)
    moment: dt.datetime | None = None

    def packed(self) -> tuple[int, bytes]:
        """(contract count, stream), as packed.pack_chains gives each chain."""
        return self.stored, self.spill.read(self.offset, self.size)


def load_many(spilled: list[SpilledChain], blobs: list[bytes]) -> list[ImportedChain]:
    """Each spilled chain as it was parsed (but its iv_source, which the stored stream keeps), from its
    stream in `blobs` (SpilledChain.packed), the streams converted together (packed.unpack_many) and
    every expiry's close found once for the batch."""
    from gexhistory.store.packed import unpack_many  # lazy: pyarrow, loaded by the parse already

    arrays = unpack_many(blobs, iv_source=False)
    if not arrays:
        return []
    expiry = np.concatenate([a["expiration"] for a in arrays])
    close = expiry_close_ts(expiry, np.concatenate([a["at_open"] for a in arrays]))
    at_open = expiry_close_ts(expiry, np.ones(expiry.size, dtype=bool))
    ends = np.cumsum([len(a["expiration"]) for a in arrays])
    out = []
    for p, a, lo, hi in zip(spilled, arrays, np.r_[0, ends[:-1]].tolist(), ends.tolist()):
        c = chain_from_stored(p.chain.underlying, p.chain.as_of, p.label, a, (close[lo:hi], at_open[lo:hi]))
        out.append(ImportedChain(c, p.fmt, p.file, p.label, None, p.file_spot, p.file_spot_kind, list(p.notes),
                                 p.moment))
    return out


class ChainSpill:
    """A temporary file of packed chains (deleted when closed, or when the process ends)."""

    def __init__(self) -> None:
        self._file = None
        self._end = 0

    def put(self, items: list[ImportedChain]) -> list[SpilledChain]:
        """Pack `items` into the file; their light records, in the same order."""
        from gexhistory.store.packed import pack_chains  # lazy: pyarrow, loaded by the parse already

        out = []
        shared: dict[tuple, list[str]] = {}  # a file's chains mostly carry the same notes: one list for them
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="gexhistory-chains-")
            self._file.seek(self._end)
            for p, (n, blob) in zip(items, pack_chains(*contract_columns(items), len(items))):
                self._file.write(blob)
                out.append(SpilledChain(ChainKey(p.chain.underlying, p.chain.as_of, len(p.chain)), p.fmt, p.file,
                                        p.label, self, self._end, len(blob), n, p.file_spot, p.file_spot_kind,
                                        shared.setdefault(tuple(p.notes), p.notes), p.moment))
                self._end += len(blob)
            self._file.flush()
        except OSError as exc:  # a full disk, most likely: nothing is written to the database yet
            raise BadInput(f"could not keep the parsed chains in a temporary file in {tempfile.gettempdir()} "
                           f"({exc.strerror or exc}): free space there, or point TMPDIR elsewhere") from None
        return out

    def read(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class HeldChains:
    """The chains an import has parsed so far, in file order: in memory up to `limit` contracts, past it
    in a ChainSpill (module docstring), quotedata pieces excepted until they are united. A file's chains
    are spilled before the next file is read: packing them on a thread meanwhile saved 3 s of 27 on ten
    market-wide files but raised the peak from 834 MiB to 1.29 GiB."""

    def __init__(self, limit: int) -> None:
        self.limit, self.items, self.held = limit, [], 0
        self.spill = ChainSpill()
        self.spilling = False

    def add(self, items: list) -> None:
        """A file's chains (read_chain_file), spilled once the budget is passed."""
        self.items += items
        self.held += sum(len(p.chain) for p in items if p.fmt not in SPLIT_FORMATS)
        if self.held > self.limit:
            self.spilling = True
        if self.spilling:
            self._spill()

    def united(self, union) -> list:
        """The items once `union` (chain_union.union_split_files) has united split chains, those it made
        spilled too when spilling."""
        self.items = union(self.items)
        if self.spilling:
            self._spill(united=True)
        return self.items

    def close(self) -> None:
        """After a failure: the spill's file deleted."""
        self.spill.close()

    def _spill(self, united: bool = False) -> None:
        movable = [i for i, p in enumerate(self.items)
                   if not isinstance(p, SpilledChain) and (united or p.fmt not in SPLIT_FORMATS)]
        for _, run in groupby(movable, key=lambda i: self.items[i].file):  # a file at a time: packing copies its columns
            positions = list(run)
            for i, spilled in zip(positions, self.spill.put([self.items[i] for i in positions])):
                self.items[i] = spilled
        self.held = 0
