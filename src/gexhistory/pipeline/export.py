"""`gexhistory export` / `gx.export`: stored rows to Parquet or CSV, streamed, for analysis tools.

Rows leave the database a chunk at a time (store.frames.stream: a server-side cursor on PostgreSQL)
and each chunk is written before the next is read, so memory holds one chunk (about a million values)
whatever the table's size. Parquet gets a fixed schema derived from the table's columns (one row
group per chunk, zstd); CSV gets a header line and the stored text of timestamps and dates.

Everything the user gave is checked before the database is read: the table, the format, the dates,
the output path (its folder must exist and be writable; an existing file needs `force`) and, when
symbols are named, that the database knows each (a known symbol without rows in this table, such as
synthetic bars that are never stored, exports none). The file is written under a hidden temporary
name in the output's folder and renamed over `out` only once complete, so a failed or interrupted
export leaves no partial file and never damages an existing one.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy.exc import SQLAlchemyError

from gexhistory.errors import BadDatabase, BadInput, WorkFailed
from gexhistory.pipeline import columnar
from gexhistory.pipeline.runs import ProgressFn
from gexhistory.store import frames
from gexhistory.store.chains import contracts_packed
from gexhistory.store.db import user_error

FORMATS = ("parquet", "csv")
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
# Rows travel from the cursor as Python objects (~50 bytes a value), so a chunk is kept small; in Arrow
# they take 8 bytes a value, so Parquet row groups gather many chunks (readers skip by row group).
CHUNK_VALUES = 200_000  # rows per chunk x columns: about 10 MB of Python values in flight
ROW_GROUP_ROWS = 128 * 1024
TABLES = tuple(frames.EXPORTABLE)


@dataclass
class ExportResult:
    """What an export wrote (``gx.export``'s return value; ``as_dict()`` is the CLI's ``--json``).

    Attributes
    ----------
    path : str
        The absolute path written.
    table, format : str
    rows : int
        Rows written.
    columns : list of str
        Column names, in the file's order (every column of the table).
    symbols : list of str or None
        The symbols asked for (None: all).
    start, end : datetime.date or None
        The window asked for.
    bytes : int
        Size of the file.
    elapsed : float
        Seconds.
    """

    path: str
    table: str
    format: str
    rows: int
    columns: list[str]
    symbols: list[str] | None
    start: dt.date | None
    end: dt.date | None
    bytes: int
    elapsed: float

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        return {"path": self.path, "table": self.table, "format": self.format, "rows": self.rows,
                "columns": self.columns, "symbols": self.symbols,
                "start": self.start and self.start.isoformat(), "end": self.end and self.end.isoformat(),
                "bytes": self.bytes, "elapsed_seconds": round(self.elapsed, 3)}


def check_table(table: str) -> str:
    if table not in frames.EXPORTABLE:
        raise BadInput(f"unknown table {table!r}: choose one of {', '.join(TABLES)}")
    return table


def check_format(fmt: str | None, out: Path, flag: str = "--") -> str:
    """The format asked for, else the one `out`'s suffix names."""
    if fmt is None:
        by_suffix = SUFFIXES.get(out.suffix.lower())
        if by_suffix is None:
            raise BadInput(f"cannot tell the format from {out.name!r}: give {flag}format parquet or csv")
        return by_suffix
    if fmt.lower() not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}: choose parquet or csv")
    return fmt.lower()


def check_target(out: Path, force: bool, flag: str = "--") -> Path:
    """`out` as an absolute path that can be written; nothing is created yet."""
    out = out.expanduser().absolute()
    if out.is_dir():
        raise BadInput(f"{out} is a directory: give a file name")
    if out.exists() and not force:
        raise BadInput(f"{out} already exists: give {'--force' if flag else 'force=True'} to replace it")
    folder = out.parent
    if not folder.is_dir():
        raise BadInput(f"cannot write {out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write {out}: folder {folder} is not writable")
    return out


def export_table(table: str, out: str | os.PathLike, *, fmt: str | None = None, db: str | None = None,
                 symbols: Sequence[str] | None = None, start: dt.date | None = None, end: dt.date | None = None,
                 force: bool = False, chunk_rows: int | None = None, row_group_rows: int = ROW_GROUP_ROWS,
                 flag: str = "--", progress: ProgressFn | None = None) -> ExportResult:
    """Write the rows of `table` (for `symbols`, all when None; dates in [start, end]) to `out`.

    `chunk_rows` (default: CHUNK_VALUES values' worth) rows are read and converted at a time; Parquet
    row groups hold about `row_group_rows` rows. `progress(table, rows written, rows to write)` is
    called after each chunk (the total is counted first, only when `progress` is given)."""
    t0 = time.perf_counter()
    check_table(table)
    path = check_target(Path(out), force, flag)
    fmt = check_format(fmt, path, flag)
    if start and end and end < start:
        raise BadInput(f"{flag}end {end} is before {flag}start {start}")
    cols = frames.export_columns(table)
    chunk = chunk_rows or max(1_000, CHUNK_VALUES // len(cols))
    engine = frames.open_reader(db)
    try:
        if frames.EXPORTABLE[table].packed and not contracts_packed(engine):  # export reads, never converts
            raise BadDatabase(f"{table} is stored as an earlier gexhistory wrote it (a row per contract): run "
                              "`gexhistory init` on this database once to convert it, then export")
        if symbols:  # a typo is bad input; a known symbol with no rows in this table exports none
            absent = frames.symbols_without_rows(engine, table, list(symbols))
            unknown = frames.symbols_without_rows(engine, "gex_history", absent) if absent else []
            if unknown:
                held = frames.table_symbols(engine, "gex_history")
                raise BadInput(f"no stored history for {', '.join(unknown)}: "
                               + (f"the database holds {', '.join(held)}" if held else "the database is empty"))
        query = frames.export_select(table, list(symbols) if symbols else None, start, end)
        packed = frames.EXPORTABLE[table].packed
        with closing(frames.stream(engine, query, chunk, packed=packed)) as chunks:  # a failed write ends the read too
            if progress is not None:
                chunks = _reported(chunks, table, frames.count_rows(engine, query, packed=packed), progress)
            rows = _write_atomically(path, lambda tmp: _WRITERS[fmt](tmp, cols, chunks, row_group_rows))
    except SQLAlchemyError as exc:
        raise user_error(exc) from None
    finally:
        engine.dispose()
    return ExportResult(str(path), table, fmt, rows, [c.name for c in cols], list(symbols) if symbols else None,
                        start, end, path.stat().st_size, time.perf_counter() - t0)


def _reported(chunks: Iterable[Sequence], label: str, total: int, progress: ProgressFn) -> Iterator[Sequence]:
    """The chunks, reporting the rows done each time the writer asks for the next one (the one before
    it is then written)."""
    done = 0
    progress(label, 0, total)
    for rows in chunks:
        yield rows
        done += len(rows)
        progress(label, done, max(total, done))  # rows added since the count are written too


def _write_parquet(tmp: Path, cols: list[frames.Col], chunks: Iterable[Sequence], row_group_rows: int) -> int:
    arrow_schema = columnar.schema(cols)
    n = 0
    pending: list[pa.RecordBatch] = []  # converted chunks of the row group being gathered
    with pq.ParquetWriter(str(tmp), arrow_schema, compression="zstd") as writer:

        def row_group() -> None:
            t = pa.Table.from_batches(pending, schema=arrow_schema)
            writer.write_table(t, row_group_size=max(t.num_rows, 1))  # all of it in one row group
            pending.clear()

        for rows in chunks:
            pending.append(columnar.batch(cols, rows, arrow_schema))
            n += len(rows)
            if sum(b.num_rows for b in pending) >= row_group_rows:
                row_group()
        if pending or n == 0:  # the last row group; an empty export still gets its schema
            row_group()
    return n


def _write_csv(tmp: Path, cols: list[frames.Col], chunks: Iterable[Sequence], _row_group_rows: int) -> int:
    arrow_schema = columnar.schema(cols, text_times=True)
    n = 0
    with pa_csv.CSVWriter(str(tmp), arrow_schema) as writer:
        for rows in chunks:
            writer.write_batch(columnar.batch(cols, rows, arrow_schema))
            n += len(rows)
    return n


_WRITERS = {"parquet": _write_parquet, "csv": _write_csv}


def _write_atomically(out: Path, write) -> int:
    """Run write(tmp) on a fresh hidden file beside `out`, then rename it to `out`; on any failure
    (Ctrl-C included) the temporary file is removed and `out` is as it was."""
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    try:
        with open(tmp, "xb"):  # claims the name, with the permissions the umask gives a new file
            pass
        rows = write(tmp)
        with open(tmp, "rb+") as fh:  # on disk before it takes the final name
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WorkFailed(f"cannot write {out}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows
