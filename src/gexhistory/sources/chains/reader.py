"""Reading a chain file into a Table: a CSV, plain or compressed (.gz, .bz2, .xz, a .zip of one file),
by Arrow's multi-threaded reader when it reads the file exactly as pandas would (plain, .gz and .zip),
else by pandas' reader, whose handling of odd files and whose messages are the reference (read_table).
Also the decompression the Cboe quotedata reader shares (head_lines, pandas_source)."""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from gexhistory.errors import BadInput
from gexhistory.sources.chains.common import Table, norm_header


def read_table(path: str, keep=None) -> Table:
    """Read a CSV (or a .zip/.gz holding one) as strings; unreadable files are rejected whole.
    `keep(header)`: given the header's normalised names, those the caller will read (None: all); Arrow
    then converts only those (a DataShop file's 34 columns hold 13 a parser reads: a third of the read).
    As a dict, each name says how: "number" (Arrow parses it: the column holds floats, NaN for a blank),
    "code" (Arrow codes its few distinct values) or "text"; Table's methods take any of them alike.

    Arrow's multi-threaded reader takes every file it can read exactly as pandas would; any other
    (a field count off, a blank line, bytes that are not UTF-8, a quote after a space, a quoted or
    repeated header name) goes whole to pandas' reader, whose handling and messages are the reference."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{path}: no such file")
    fast = _read_arrow(p, str(path), keep)
    if fast is not None:
        return fast
    import pandas as pd  # lazy: its import is a sixth of a second of start-up

    try:
        with warnings.catch_warnings():
            # Without an index column pandas only warns when the first row is longer than the header.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            with pandas_source(str(p)) as source:
                df = pd.read_csv(source, dtype=str, keep_default_na=False, skip_blank_lines=False, index_col=False,
                                 skipinitialspace=True, compression="infer", encoding="utf-8-sig")
    except pd.errors.ParserWarning:
        raise BadInput(f"{path}:2: wrong number of fields for the header") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise BadInput(f"{where}: wrong number of fields for the header") from None
    except (pd.errors.EmptyDataError, *unreadable_errors()) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput(f"{path}: not an option chain file (unreadable as CSV: {reason})") from None
    return Table(str(path), df.fillna(""))


def zip_member(zf: zipfile.ZipFile) -> str | None:
    """The one data file of a .zip, or None when it holds another number of them. Folders and what
    macOS's Finder adds to every archive it makes (a __MACOSX/ folder of ._ resource files) are not
    data files."""
    names = [n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")
             and not n.rsplit("/", 1)[-1].startswith("._")]
    return names[0] if len(names) == 1 else None


def pandas_source(path: str):
    """A context giving what pandas' reader is handed for a chain file: its path (pandas decompresses
    by suffix), or a .zip's one data file as a stream, since pandas refuses a .zip that holds anything
    else, such as Finder's __MACOSX/ entries. A .zip without exactly one data file is given by its path,
    so that pandas' message names what it holds."""
    p = Path(path)
    raw = _raw(p) if p.suffix.lower() == ".zip" else None
    return raw if raw is not None else nullcontext(str(p))


def _raw(p: Path):
    """The file's bytes as a binary stream (a .zip's one member, a .gz decompressed), or None for
    what the fast reader leaves to pandas."""
    suffix = p.suffix.lower()
    try:
        if suffix == ".gz":
            import gzip

            return gzip.open(p, "rb")
        if suffix == ".zip":
            zf = zipfile.ZipFile(p)
            name = zip_member(zf)
            return zf.open(name) if name is not None else None
        if suffix in {".bz2", ".xz", ".zst", ".tar", ".tgz"}:
            return None
        return open(p, "rb")
    except (zipfile.BadZipFile, OSError):
        return None


def unreadable_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged or mislabelled file raises (pandas' reader or ours): a truncated .gz is an
    EOFError, a bad .xz an lzma.LZMAError, which is neither an OSError nor a ValueError."""
    import lzma

    return (OSError, EOFError, ValueError, zipfile.BadZipFile, lzma.LZMAError)


def head_lines(path: str, n: int) -> list[str] | None:
    """The first n lines of a chain file as text (a BOM dropped, line ends kept), through the same
    decompression pandas applies by suffix (.gz, .bz2, .xz, a .zip's one member); None when the file
    cannot be opened or decompressed so."""
    import io

    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".bz2":
            import bz2

            raw = bz2.open(p, "rb")
        elif suffix == ".xz":
            import lzma

            raw = lzma.open(p, "rb")
        else:
            raw = _raw(p)
        if raw is None:
            return None
        with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as f:
            return [f.readline() for _ in range(n)]
    except unreadable_errors():
        return None


def _spaced_quote(raw) -> bool:
    """Whether a quote follows a space or tab anywhere in the stream (read in 16 MiB pieces)."""
    tail = b""
    while piece := raw.read(1 << 24):
        chunk = tail + piece
        if b'"' in chunk and (b' "' in chunk or b'\t"' in chunk):  # one memchr when nothing is quoted
            return True
        tail = chunk[-1:]
    return False


def _spaced_quote_mapped(raw) -> bool:
    """_spaced_quote of a plain file, searched where the system maps it: no copy of its bytes (a
    fourth of the stream's CPU time on a 166 MB file), 16 MiB at a time so that other threads get
    the GIL between the pieces."""
    import mmap

    size = os.fstat(raw.fileno()).st_size
    if size == 0:
        return False
    step = 1 << 24
    with mmap.mmap(raw.fileno(), size, access=mmap.ACCESS_READ) as mm:
        if not any(mm.find(b'"', a, a + step) >= 0 for a in range(0, size, step)):
            return False  # nothing quoted: the usual case, decided by a memchr of the file
        return any(mm.find(b' "', a, a + step + 1) >= 0 or mm.find(b'\t"', a, a + step + 1) >= 0
                   for a in range(0, size, step))


def _read_arrow(p: Path, path: str, keep=None) -> Table | None:
    """The file as a Table read by Arrow, or None when pandas must read it (read_table). The file is
    streamed twice at once, never held whole: a scan for what only pandas reads right (in a thread)
    beside Arrow's read, whose result is dropped when the scan finds such a thing."""
    import io
    import threading

    raw = _raw(p)
    if raw is None:
        return None
    try:
        first = raw.readline()
    except (OSError, EOFError, zipfile.BadZipFile):
        raw.close()
        return None
    if _spaced_quote(io.BytesIO(first)):
        raw.close()
        return None  # pandas skips the spaces before a quoted field (skipinitialspace): its reader
    found: list[bool] = []

    def scan() -> None:
        try:
            with raw:
                plain = isinstance(raw, io.BufferedReader)  # not a .gz or a .zip's member: mapped
                found.append(_spaced_quote_mapped(raw) if plain else _spaced_quote(raw))
        except (OSError, EOFError, zipfile.BadZipFile):
            found.append(True)  # unreadable on the way: pandas' reader says why

    scanner = threading.Thread(target=scan, name="gexhistory-csv-scan", daemon=True)
    scanner.start()
    try:
        table = _arrow_table(p, path, keep, first)
    finally:
        scanner.join()
    return table if found == [False] else None  # the scan's verdict overrides Arrow's table


def _arrow_table(p: Path, path: str, keep, first: bytes) -> Table | None:
    """Arrow's read of the file whose first line is `first`, or None where pandas must read it."""
    import csv
    import io

    import pyarrow as pa
    import pyarrow.csv as pcsv

    bom = first.startswith(b"\xef\xbb\xbf")
    try:
        header = next(csv.reader(io.StringIO(first[3 if bom else 0:].decode("utf-8")), skipinitialspace=True))
    except (UnicodeDecodeError, StopIteration, csv.Error):
        return None
    if not header or len(set(header)) < len(header) or b'"' in first:
        return None  # no header, repeated names (pandas renames them) or a quoted header: pandas'
    wanted = keep({norm_header(h) for h in header}) if keep is not None else None
    # A row blank in every kept column is then taken for a blank line: a chain row has its key there.
    include = [h for h in header if norm_header(h) in wanted] if wanted is not None else None
    kinds = {h: wanted[norm_header(h)] for h in include} if isinstance(wanted, dict) else {}

    def read(types: dict, columns: list[str] | None):
        invalid = []

        def skip(row) -> str:
            invalid.append(row)
            return "skip"

        try:  # a plain or .gz file by its path (Arrow's own reader), a .zip's member as a stream
            with (_raw(p) if p.suffix.lower() == ".zip" else nullcontext(str(p))) as source:
                table = pcsv.read_csv(
                    source,
                    read_options=pcsv.ReadOptions(column_names=header, skip_rows=1),
                    parse_options=pcsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=skip),
                    convert_options=pcsv.ConvertOptions(
                        column_types={h: types.get(h, pa.string()) for h in header}, include_columns=columns,
                        null_values=[""], strings_can_be_null=False, quoted_strings_can_be_null=False))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, EOFError, zipfile.BadZipFile):
            return None
        if invalid or any(f.type != types.get(f.name, pa.string()) for f in table.schema):
            return None
        return table

    # Columns a parser reads as numbers are converted by the reader (Arrow's parse of a number is the
    # same whether it converts a field or a string: pinned by a test), and its symbols and dates coded
    # by their few distinct values. A column that does not convert, or holds a NaN or an infinity,
    # sends the whole file to the all-text read below, whose messages name the value as written.
    typed = {h: pa.float64() if k == "number" else pa.dictionary(pa.int32(), pa.string())
             for h, k in kinds.items() if k in ("number", "code")}
    if typed:
        table = read(typed, include)
        if table is not None and all(_all_finite(table.column(h)) for h, t in typed.items() if t == pa.float64()):
            return Table(path, arrow=table, lines=np.arange(table.num_rows) + 2, header=header,
                         text_of=lambda name: read({}, [h for h in header if norm_header(h) == name]).column(0))
    table = read({}, include)
    if table is None:
        return None
    return Table(path, arrow=table, lines=np.arange(table.num_rows) + 2, header=header)


def _all_finite(col) -> bool:
    """Whether every value of a float column read from text is finite or null (blank)."""
    import pyarrow.compute as pc

    return bool(pc.all(pc.is_finite(col)).as_py() is not False)
