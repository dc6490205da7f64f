"""Arrow arrays to numpy and back through their buffers, for the chain import's hot path.

pyarrow's own conversions (`Array.to_numpy`, `pa.array` of a numpy array, `pa.scalar`) import pandas
on first use, a sixth of a second of a command's start-up; these don't. Fixed-width types only
(numbers, booleans, dates, dictionary indices); anything else stays with pyarrow's conversions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_NUMPY = {"double": np.float64, "float": np.float32, "int8": np.int8, "int16": np.int16, "int32": np.int32,
          "int64": np.int64, "uint8": np.uint8, "uint32": np.uint32, "date32[day]": np.int32}


def to_numpy(values) -> np.ndarray:
    """An Arrow Array or ChunkedArray of a fixed-width type as a new numpy array: booleans as bool, a
    date32 as its day numbers, a float's null as NaN. ValueError for a null in any other type (it has
    no value to stand for it)."""
    import pyarrow as pa

    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    name = str(values.type)
    if name != "bool" and name not in _NUMPY:
        raise ValueError(f"to_numpy takes fixed-width types, not {name}")
    dtype = np.dtype(bool) if name == "bool" else np.dtype(_NUMPY[name])
    parts = [_chunk(c, dtype) for c in chunks if len(c)]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _bits(buffer, offset: int, n: int) -> np.ndarray:
    """n bits of an Arrow bitmap from bit `offset`, least significant bit first."""
    return np.unpackbits(np.frombuffer(buffer, np.uint8), count=offset + n, bitorder="little")[offset:].astype(bool)


def _chunk(c, dtype: np.dtype) -> np.ndarray:
    n, offset = len(c), c.offset
    validity, data = c.buffers()[:2]
    if dtype.kind == "b":
        out = _bits(data, offset, n)
    else:
        out = np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize)
    if c.null_count:
        if dtype.kind != "f":
            raise ValueError(f"{c.null_count} nulls in a column of {c.type}: no value stands for them")
        out = np.where(_bits(validity, offset, n), out, np.nan)
    return out


def to_arrow(values: np.ndarray, null: np.ndarray | None = None, type=None):
    """A numpy array of numbers or booleans as an Arrow array over the same memory (booleans packed),
    null where `null` is True; `type` an Arrow type of the same width (date32 for int32 day numbers)."""
    import pyarrow as pa

    v = np.ascontiguousarray(values)
    if v.dtype == bool:
        data, default = pa.py_buffer(np.packbits(v, bitorder="little")), pa.bool_()
    else:
        data, default = pa.py_buffer(v), pa.from_numpy_dtype(v.dtype)
    missing = int(np.count_nonzero(null)) if null is not None else 0
    validity = pa.py_buffer(np.packbits(~np.asarray(null, dtype=bool), bitorder="little")) if missing else None
    return pa.Array.from_buffers(type or default, v.size, [validity, data], null_count=missing)


def strings(values: Sequence[str]):
    """A few Python strings as an Arrow utf8 array."""
    import pyarrow as pa

    encoded = [s.encode("utf-8") for s in values]
    offsets = np.cumsum([0] + [len(b) for b in encoded], dtype=np.int32)
    return pa.Array.from_buffers(pa.utf8(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
