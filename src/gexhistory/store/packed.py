"""An option chain's contracts stored as one value: an Arrow IPC stream per chain.

Why not a row per contract: a market-wide end-of-day file holds about 1.5 million contracts a day. As
rows they cost ~5 us each to insert through Python's sqlite3 (more than half of a 1M-row import) and
~160 bytes each on disk with the key's index (a year of such files: ~60 GB). One stream per chain costs
microseconds per chain, ~27 bytes per contract on the benchmark file (benchmarks/import_chains.py;
LZ4 for all but the smallest chains), and any Arrow reader opens it
(`pyarrow.ipc.open_stream(blob).read_all()`; `gexhistory export option_chain_contracts` writes the
contracts as rows).

The stream's columns are those of CONTRACT_SCHEMA, sorted by (expiration, strike, right) with puts
first (the order the engine builds chains in), one contract per key.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from gexhistory.columnar import strings, to_arrow, to_numpy
from gexhistory.errors import NonFiniteValue

CONTRACT_SCHEMA = pa.schema([
    pa.field("expiration", pa.date32(), nullable=False),
    pa.field("strike", pa.float64(), nullable=False),
    pa.field("right", pa.utf8(), nullable=False),  # 'C' or 'P'
    pa.field("open_interest", pa.float64(), nullable=False),
    pa.field("iv", pa.float64(), nullable=False),
    pa.field("iv_source", pa.utf8(), nullable=False),  # f = file, p = from the option's price, i = interpolated, m = modelled surface
    pa.field("gamma", pa.float64()),  # the vendor's, when the file has one
    pa.field("expires_at_open", pa.bool_(), nullable=False),  # an AM-settled root's contract
    # An AM-settled contract beside this PM one (same expiration, strike and right): its OI and IV.
    pa.field("open_interest_at_open", pa.float64()),
    pa.field("iv_at_open", pa.float64()),
])
CONTRACT_COLUMNS = tuple(CONTRACT_SCHEMA.names)

# Below this many contracts a chain's stream is left uncompressed: the codec's per-buffer cost would
# exceed what it saves on a few numbers. Measured on the 1M-row benchmark file (packing all 3,000
# chains, one thread, 2026-12-06): LZ4 (frame) from 50 contracts, 21.7 MiB in 0.20 s; zstd (level 1)
# from 200, 22.5 MiB in 0.37 s (zstd's cost here is per buffer, not per byte: level -5 was no faster);
# LZ4 from 200, 27.9 MiB in 0.17 s; uncompressed, 52.7 MiB in 0.13 s. Reading every chain back took
# 0.15 s with LZ4 against 0.26 s with zstd. Streams stored by earlier versions (zstd) read as before:
# a stream names its codec.
COMPRESS_FROM = 50
_PLAIN = ipc.IpcWriteOptions()
# One thread per stream: a chain's buffers are small, and the import packs on an engine thread already.
_LZ4 = ipc.IpcWriteOptions(compression="lz4", use_threads=False)
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the IPC stream's end: a continuation marker and a zero length


def _schema_message() -> bytes:
    """The stream's first message, CONTRACT_SCHEMA, as every chain's stream begins."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, CONTRACT_SCHEMA):
        pass
    return sink.getvalue().to_pybytes()[:-len(_EOS)]


_SCHEMA_MESSAGE = _schema_message()

TABLE = "option_chain_contracts"


def pack_chains(chain: np.ndarray, columns: dict[str, np.ndarray], n_chains: int) -> list[tuple[int, bytes]]:
    """One (contract count, stream) per chain 0..n_chains-1. `chain[i]`: the chain of contract i;
    `columns`: expiration (datetime64[D]), strike, is_call, open_interest, iv, iv_source ('f'/'p'/'i'/'m'),
    gamma, expires_at_open, open_interest_at_open, iv_at_open, one array each with NaN for none.

    Refuses (NonFiniteValue) a NaN or infinite strike, OI or IV and an infinite optional value, and
    (ValueError) two contracts of one chain with the same key; nothing is packed then."""
    chain = np.asarray(chain, dtype=np.int64)
    expiry = np.asarray(columns["expiration"]).astype("datetime64[D]")
    strike = np.asarray(columns["strike"], dtype=float)
    is_call = np.asarray(columns["is_call"], dtype=bool)
    _refuse(expiry, strike, columns)
    day = expiry.astype(np.int64)
    order = _key_order(chain, day, strike, is_call)
    c, d, k, r = chain[order], day[order], strike[order], is_call[order]
    same = (c[1:] == c[:-1]) & (d[1:] == d[:-1]) & (k[1:] == k[:-1]) & (r[1:] == r[:-1])
    if same.any():
        i = order[1:][same][0]
        raise ValueError(f"two contracts with one key in a chain: {expiry[i]} {strike[i]:g} "
                         f"{'C' if is_call[i] else 'P'}")
    # Arrays over the numpy memory (columnar: pa.array would import pandas), NaN as null where optional.
    optional = lambda name: to_arrow(x := np.asarray(columns[name], dtype=float)[order], np.isnan(x))  # noqa: E731
    table = pa.table([
        to_arrow(d.astype(np.int32), type=pa.date32()),
        to_arrow(k),
        _letters(r.astype(np.int8), ("P", "C")),
        to_arrow(np.asarray(columns["open_interest"], dtype=float)[order]),
        to_arrow(np.asarray(columns["iv"], dtype=float)[order]),
        _letters(_iv_source_codes(np.asarray(columns["iv_source"]))[order], IV_SOURCES),
        optional("gamma"),
        to_arrow(np.asarray(columns["expires_at_open"], dtype=bool)[order]),
        optional("open_interest_at_open"),
        optional("iv_at_open"),
    ], schema=CONTRACT_SCHEMA)
    counts = np.bincount(c, minlength=n_chains)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out: list = [None] * n_chains
    for options, chosen in ((_PLAIN, counts < COMPRESS_FROM), (_LZ4, counts >= COMPRESS_FROM)):
        for j, blob in zip(np.flatnonzero(chosen).tolist(), _streams(table, starts[chosen], counts[chosen], options)):
            out[j] = (int(counts[j]), blob)
    return out


IV_SOURCES = ("f", "p", "i", "m")


def _key_order(chain, day, strike, is_call) -> np.ndarray:
    """The permutation that sorts contracts by (chain, expiration, strike, right with puts first);
    found in one pass when they come sorted (as the importer builds them), and when only some chains
    are out of order (an SPX monthly left alone among SPXW contracts), only those chains are sorted."""
    n = chain.size
    if n < 2:
        return np.arange(n)
    a, b = slice(None, -1), slice(1, None)
    later = ((chain[b] > chain[a]) | (chain[b] == chain[a]) & (
        (day[b] > day[a]) | (day[b] == day[a]) & (
            (strike[b] > strike[a]) | (strike[b] == strike[a]) & (is_call[b] >= is_call[a]))))
    if later.all():
        return np.arange(n)
    if (chain[b] < chain[a]).any():  # chains not contiguous: the whole sort
        return np.lexsort((is_call, strike, day, chain))
    unsorted = np.zeros(int(chain.max()) + 1, dtype=bool)
    unsorted[chain[1:][~later]] = True
    rows = np.flatnonzero(unsorted[chain])
    order = np.arange(n)
    order[rows] = rows[np.lexsort((is_call[rows], strike[rows], day[rows], chain[rows]))]
    return order


def _iv_source_codes(src: np.ndarray) -> np.ndarray:
    codes = np.full(src.size, -1, dtype=np.int8)
    for j, letter in enumerate(IV_SOURCES):
        codes[src == letter] = j
    if (codes < 0).any():
        raise ValueError(f"iv_source {src[codes < 0][0]!r} is none of {', '.join(IV_SOURCES)}")
    return codes


def _letters(codes: np.ndarray, letters: tuple[str, ...]) -> pa.Array:
    """Strings from small integer codes, decoded by Arrow (a million Python-free, unlike from numpy text)."""
    return pa.DictionaryArray.from_arrays(to_arrow(codes.astype(np.int8)), strings(letters)).cast(pa.utf8())


def _streams(table: pa.Table, starts: np.ndarray, counts: np.ndarray, options) -> list[bytes]:
    """One IPC stream per slice of `table` (one chain each): written by one writer as one stream, then
    cut at each batch's end, each batch between the schema message and the end marker (an empty chain:
    no batch, as its own writer writes none). The same bytes as a writer per chain (a batch message
    does not depend on the batches before it in a stream without dictionaries), without a writer's
    set-up per chain, a third of the packing time."""
    if not len(counts):
        return []
    sink = pa.BufferOutputStream()
    ends = []
    with ipc.new_stream(sink, CONTRACT_SCHEMA, options=options) as writer:
        for s, n in zip(starts.tolist(), counts.tolist()):
            writer.write_table(table.slice(s, n))
            ends.append(max(sink.tell(), len(_SCHEMA_MESSAGE)))  # the schema goes out with the first batch
    whole = sink.getvalue().to_pybytes()
    begins = [len(_SCHEMA_MESSAGE)] + ends[:-1]
    return [b"".join((_SCHEMA_MESSAGE, whole[a:b], _EOS)) for a, b in zip(begins, ends)]


def _refuse(expiry: np.ndarray, strike: np.ndarray, columns: dict) -> None:
    if np.isnat(expiry).any():
        raise NonFiniteValue(f"refused to store a contract without an expiration in {TABLE}; nothing was written")
    for name, values in (("strike", strike), ("open_interest", columns["open_interest"]), ("iv", columns["iv"])):
        x = np.asarray(values, dtype=float)
        if not np.isfinite(x).all():
            i = int(np.flatnonzero(~np.isfinite(x))[0])
            raise NonFiniteValue(f"refused to store {x[i]!r} in {TABLE}.{name} (contract {i + 1} of {x.size}): "
                                 "a computed value is not finite; nothing of this batch was written")
    for name in ("gamma", "open_interest_at_open", "iv_at_open"):
        x = np.asarray(columns[name], dtype=float)
        if np.isinf(x).any():
            i = int(np.flatnonzero(np.isinf(x))[0])
            raise NonFiniteValue(f"refused to store {x[i]!r} in {TABLE}.{name} (contract {i + 1} of {x.size}): "
                                 "a computed value is not finite; nothing of this batch was written")


def read_stream(blob: bytes) -> pa.Table:
    """A stored chain's contracts as an Arrow table (CONTRACT_SCHEMA)."""
    return ipc.open_stream(pa.py_buffer(blob)).read_all()


def unpack(blob: bytes | None) -> dict[str, np.ndarray]:
    """A stored chain's contracts as the arrays the engine takes: expiration (datetime64[D]), strike,
    is_call, open_interest, iv, iv_source (object), gamma, at_open, oi_at_open, iv_at_open (NaN for
    none), in stored order; no contract for None (no chain stored)."""
    return _arrays(CONTRACT_SCHEMA.empty_table() if blob is None else read_stream(blob))


def unpack_many(blobs: list[bytes], iv_source: bool = True) -> list[dict[str, np.ndarray]]:
    """unpack of each blob, converted to numpy together (a column per batch, not per chain: a few
    hundred contracts a chain make the conversions' fixed cost most of the work); without `iv_source`
    when the caller does not need it (the engine does not)."""
    if not blobs:
        return []
    head, tail = len(_SCHEMA_MESSAGE), len(_EOS)
    if all(b.startswith(_SCHEMA_MESSAGE) and b.endswith(_EOS) for b in blobs):
        # Streams this version wrote (_streams): their record batches, one after another behind one
        # schema, are one stream, read at once.
        table = read_stream(b"".join([_SCHEMA_MESSAGE, *(b[head:len(b) - tail] for b in blobs), _EOS]))
        sizes = [len(c) for c in table.column(0).chunks]
        if len(sizes) != len(blobs):  # an empty chain has no batch: count each stream's rows instead
            sizes = [read_stream(b).num_rows for b in blobs]
    else:
        tables = [read_stream(b) for b in blobs]
        table, sizes = pa.concat_tables(tables), [t.num_rows for t in tables]
    whole = _arrays(table.combine_chunks(), iv_source)  # one chunk: a column per batch converts at once
    ends = np.cumsum(sizes)
    return [{k: v[a:b] for k, v in whole.items()} for a, b in zip(np.r_[0, ends[:-1]].tolist(), ends.tolist())]


def _arrays(t: pa.Table, iv_source: bool = True) -> dict[str, np.ndarray]:
    import pyarrow.compute as pc

    # columnar.to_numpy: dates as day numbers and a float's null as NaN, through the buffers (pyarrow's
    # own conversion loads pandas, and makes a Python date per date32 value: 0.25 s for 134,000).
    col = lambda name: to_numpy(t.column(name))  # noqa: E731
    out = {
        "expiration": col("expiration").astype("datetime64[D]"),
        "strike": col("strike"),
        "is_call": to_numpy(pc.equal(t.column("right"), strings(("C",))[0])),
        "open_interest": col("open_interest"),
        "iv": col("iv"),
        "gamma": col("gamma"),
        "at_open": col("expires_at_open"),
        "oi_at_open": col("open_interest_at_open"),
        "iv_at_open": col("iv_at_open"),
    }
    if iv_source:
        out["iv_source"] = np.array(t.column("iv_source").to_pylist() + [None], dtype=object)[:-1]
    return out


def rows_of(blob: bytes) -> list[tuple]:
    """A stored chain's contracts as row tuples of CONTRACT_COLUMNS' values (dates 'YYYY-MM-DD', None
    for a null), for an export."""
    t = read_stream(blob)
    cols = [t.column(n).cast(pa.utf8()).to_pylist() if n == "expiration" else t.column(n).to_pylist()
            for n in CONTRACT_COLUMNS]
    return list(zip(*cols))
