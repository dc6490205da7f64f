"""Stored rows as Arrow batches: one conversion for Parquet export, CSV export and the API's DataFrames.

Types come from the schema columns (store.frames.Col kinds), never from the values, so every chunk of
an export has the same schema and an empty result still has typed columns:

| kind      | Arrow                          | stored as                                   |
|-----------|--------------------------------|---------------------------------------------|
| float     | float64                        | REAL / DOUBLE PRECISION; NULL -> null       |
| int       | int64                          | INTEGER; NULL -> null                       |
| bool      | bool                           | BOOLEAN (0/1 in SQLite)                     |
| str       | string                         | TEXT / VARCHAR                              |
| timestamp | timestamp[us, America/New_York] | 'YYYY-MM-DD HH:MM:SS', New York wall clock |
| date      | date32                         | 'YYYY-MM-DD'                                |

`text_times=True` keeps timestamps and dates as the stored text (CSV: the exact strings the database
and the AlphaGEX pages use). A wall-clock time inside the autumn clock change's repeated hour is read
as its first occurrence (daylight time); snapshot times never fall there, only run bookkeeping
(created_at, started_at) can.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from gexhistory.calendar import TZ_NAME
from gexhistory.store.frames import Col

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
DAY_FORMAT = "%Y-%m-%d"
_PLAIN = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}


def arrow_type(kind: str, *, text_times: bool = False) -> pa.DataType:
    """The Arrow type a column of this kind is written as."""
    if kind == "timestamp":
        return pa.string() if text_times else pa.timestamp("us", tz=TZ_NAME)
    if kind == "date":
        return pa.string() if text_times else pa.date32()
    return _PLAIN[kind]


def schema(cols: Sequence[Col], *, text_times: bool = False) -> pa.Schema:
    """The fixed Arrow schema of these columns."""
    return pa.schema([pa.field(c.name, arrow_type(c.kind, text_times=text_times)) for c in cols])


def _array(kind: str, values: Sequence, typ: pa.DataType) -> pa.Array:
    if kind not in ("timestamp", "date") or typ == pa.string():
        return pa.array(values, type=typ)
    text = pa.array(values, type=pa.string())
    if kind == "date":
        return pc.strptime(text, format=DAY_FORMAT, unit="s").cast(pa.date32())
    wall = pc.strptime(text, format=TS_FORMAT, unit="us")
    # A stored time in the clock change's gap cannot exist (they are formatted from real clocks): raise.
    return pc.assume_timezone(wall, timezone=TZ_NAME, ambiguous="earliest", nonexistent="raise")


def batch(cols: Sequence[Col], rows: Sequence[tuple], arrow_schema: pa.Schema) -> pa.RecordBatch:
    """One RecordBatch of `rows` (tuples in `cols` order) with exactly `arrow_schema`."""
    columns = list(zip(*rows)) if rows else [() for _ in cols]
    arrays = [_array(c.kind, values, arrow_schema.field(i).type) for i, (c, values) in enumerate(zip(cols, columns))]
    return pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)


def table(cols: Sequence[Col], rows: Sequence[tuple]) -> pa.Table:
    """All of `rows` as one Arrow table (the API's reads: one symbol's history fits in memory)."""
    s = schema(cols)
    return pa.Table.from_batches([batch(cols, rows, s)], schema=s)
