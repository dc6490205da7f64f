"""What every chain-file importer shares: reading a CSV with exact line numbers, strict vectorised
parsing that reports the first malformed row as file:line, and the record a parser returns (ChainRows:
the file's contracts as it gives them). What is derived from them (implied vols, spots from put-call
parity, OptionChain records per underlying and date) is pipeline/chain_prep.py's."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import warnings
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gexhistory.calendar import CALENDAR_START, last_completed_session, sessions_between
from gexhistory.columnar import strings, to_arrow, to_numpy
from gexhistory.errors import BadInput
from gexhistory.words import plural

LABEL_MAX = 64  # chain_source column width
DATE_SHAPE = r"\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?|\d{1,2}/\d{1,2}/\d{4}|\d{8}"
IV_MAX = 10.0  # 1000%: a larger "IV" is a unit mistake (percent given for a decimal), not a quote


@dataclass
class ChainRows:
    """A chain file's contracts as the file gives them, checked but not derived from: one entry per
    contract (a wide row's call and put are two), in file order, nothing computed and nothing dropped.
    What the format means for the derivation is said here too (derive_iv, the note wordings)."""

    path: str
    fmt: str
    label: str  # chain_source of everything imported from the file
    underlying: np.ndarray  # object, upper case
    as_of: np.ndarray  # datetime64[D]
    expiry: np.ndarray  # datetime64[D]
    strike: np.ndarray
    is_call: np.ndarray
    oi: np.ndarray
    lines: np.ndarray  # the file line of each contract
    file_iv: np.ndarray  # the file's IV column (NaN where blank; zero or below: none, unless derive_iv is False)
    gamma: np.ndarray | None = None  # the vendor's gamma
    mid: np.ndarray | None = None  # the option's end-of-day mid price
    quoted_spots: dict[str, tuple[float, str]] | None = None  # per chain key: the file's quoted underlying, kind
    spot: np.ndarray | None = None  # per contract: the file's underlying price column
    spot_kind: str | None = None
    group: np.ndarray | None = None  # roots of one expiration (SPX, SPXW): rows to merge, not duplicates
    group_names: np.ndarray | None = None  # when given, `group` holds codes: the roots are group_names[group]
    notes: list[str] = field(default_factory=list)
    derive_iv: bool = True  # False: the file's IVs as given, every contract kept (generic files)
    zero_oi_note: bool = True  # say how many contracts were left out for zero OI
    no_iv_note: str = "with OI but no IV left out"  # after "N contract(s)"
    keep_without_iv: bool = False  # with derive_iv False: keep contracts without an IV (an OI-only file)
    interpolate_iv: bool = True  # False: a contract with neither IV nor price is left out, not interpolated
    moment: dt.datetime | None = None  # when the file's quotes were taken, where it says (quotedata)
    index: tuple | None = None  # chain_index(underlying, as_of), when the parser computed it already

    def __len__(self) -> int:
        return int(self.strike.size)


def make_label(fmt: str, path: str, suffix: str = "") -> str:
    """'<fmt>:<file name><suffix>', shortened with a hash of the name to fit the chain_source column."""
    name = Path(path).name
    room = LABEL_MAX - len(fmt) - 1 - len(suffix)
    if len(name) > room:
        digest = hashlib.sha1(name.encode()).hexdigest()[:6]
        name = name[: room - 7] + "~" + digest
    return f"{fmt}:{name}{suffix}"


def norm_header(name: str) -> str:
    """' [QUOTE_DATE]' -> 'quote_date', 'callOpenInterest' -> 'callopeninterest'."""
    return name.strip().strip("[]").strip().lower()


class Table:
    """A chain file's rows as strings, with the file line of every row and collected row problems.

    The columns are Arrow string arrays: a million-row file is parsed by vectorised Arrow kernels
    (trim, cast, hash the few distinct values of a date or a symbol), and Python strings are made
    only for the columns a parser asks text() of and for the values an error message shows."""

    def __init__(self, path: str, df=None, *, arrow=None, lines: np.ndarray | None = None,
                 header: list[str] | None = None, text_of=None):
        import pyarrow as pa  # lazy: only when a chain file is read

        self.path = path
        if arrow is None:  # a pandas DataFrame of strings (the reader's fallback, or a parser's own table)
            schema = pa.schema([(str(c), pa.string()) for c in df.columns])
            arrow = pa.Table.from_pandas(df.astype(object), schema=schema, preserve_index=False)
            lines = np.arange(len(df)) + 2
        names = [norm_header(str(c)) for c in arrow.column_names]
        cols = dict(zip(names, arrow.columns))
        blank = _blank_rows(list(cols.values()), arrow.num_rows)
        self._kept = None
        if blank is not None:
            self._kept = to_arrow(~blank)
            cols = {k: v.filter(self._kept) for k, v in cols.items()}
            lines = lines[~blank]
        self._cols = cols
        # A column the reader converted to numbers has no text left: text_of(name) reads its text again
        # from the file (for a message naming a value, the only use).
        self._text_of = text_of
        # The file's whole header: the reader may have kept only the columns its format reads.
        self._header = {norm_header(str(c)) for c in header} if header is not None else set(cols)
        self.lines = lines  # line 1 is the header
        self._n = int(lines.size)
        self.problems: list[tuple[int, str]] = []
        self.bad_rows = np.zeros(self._n, dtype=bool)  # every malformed row, for the count in the message
        self._text: dict[str, np.ndarray] = {}
        self._codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def columns(self) -> set[str]:
        return set(self._header)

    @property
    def df(self):
        """The rows as a pandas DataFrame of strings (for parsers that want one; built on demand)."""
        import pandas as pd  # lazy: its import is a sixth of a second of start-up

        return pd.DataFrame({k: self._raw_text(k).to_numpy(zero_copy_only=False) for k in self._cols})

    def __len__(self) -> int:
        return self._n

    def first(self, *names: str) -> str | None:
        return next((n for n in names if n in self.columns), None)

    def _trim(self, col: str):
        """The column's values stripped (not kept: a stripped copy of every column would double the
        table, and number() rarely needs one)."""
        import pyarrow.compute as pc

        return pc.utf8_trim_whitespace(self._raw_text(col))

    def _raw_text(self, col: str):
        """The column as the file's strings, read again for a column the reader converted."""
        import pyarrow as pa

        arr = self._cols[col]
        if pa.types.is_string(arr.type):
            return arr
        if pa.types.is_dictionary(arr.type):
            return arr.cast(pa.string())
        again = self._text_of(col)
        return again.filter(self._kept) if self._kept is not None else again

    def distinct(self, col: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, index): the column's distinct stripped strings and, per row, its value's position."""
        if col not in self._codes:
            import pyarrow as pa
            import pyarrow.compute as pc

            if pa.types.is_dictionary(self._cols[col].type):  # coded by the reader: its few values stripped
                self._codes[col] = _decoded(self._cols[col], filtered=self._kept is not None)
            else:
                arr = self._trim(col)
                values = pc.unique(arr)
                index = to_numpy(pc.index_in(arr, value_set=values))
                self._codes[col] = (np.array(values.to_pylist() + [None], dtype=object)[:-1], index.astype(np.intp))
        return self._codes[col]

    def mapped(self, col: str, fn) -> np.ndarray:
        """fn of every row's stripped value, calling fn once per distinct value (object array)."""
        values, index = self.distinct(col)
        out = np.array([fn(v) for v in values] + [None], dtype=object)[:-1]
        return out[index]

    def text(self, col: str) -> np.ndarray:
        if col not in self._text:
            if col in self._codes or self._n < 1000:
                self._text[col] = self.mapped(col, lambda v: v)
            else:
                self._text[col] = self._trim(col).to_numpy(zero_copy_only=False).astype(object)
        return self._text[col]

    def _report(self, bad: np.ndarray, col: str, values, what: str) -> None:
        if bad.size == self.bad_rows.size:
            self.bad_rows |= bad
        for i in np.flatnonzero(bad)[:3]:  # str(): a numpy string's repr is "np.str_('...')"
            self.problems.append((int(self.lines[i]), f"{col} {str(values[i])!r} {what}"))

    def _flag(self, bad: np.ndarray, col: str, what: str) -> None:
        """_report with the column's text, made only when some row is bad."""
        if bad.any():
            self._report(bad, col, self.text(col), what)

    def number(self, col: str, *, required: bool = True, positive: bool = False, nonneg: bool = False) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        vals = empty = None
        if pa.types.is_floating(self._cols[col].type):  # read as numbers (blank: null, NaN here)
            empty = to_numpy(self._cols[col].is_null())
            vals = to_numpy(self._cols[col])
        for arr in (self._cols[col], None) if vals is None else ():  # as it is, then stripped (rarely needed)
            arr = self._trim(col) if arr is None else arr
            is_empty = pc.equal(arr, strings([""])[0])
            empty = to_numpy(is_empty)
            try:  # Arrow's parse of a decimal number is pandas' (to_numeric), value for value
                if empty.any():  # blanks become nulls (NaN) first; that copies the column, so only then
                    arr = pc.if_else(is_empty, pa.scalar(None, arr.type), arr)
                vals = pc.cast(arr, pa.float64())
                vals = to_numpy(vals)
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                vals = None
        if vals is None:  # some value is not a number: pandas' parse, which says which
            import pandas as pd  # lazy: its import is a sixth of a second of start-up

            vals = pd.to_numeric(pd.Series(self.text(col), dtype=object), errors="coerce").to_numpy(dtype=float)
        vals = np.asarray(vals, dtype=float)
        self._flag(~np.isfinite(vals) & ~empty, col, "is not a number")
        if required:
            self._flag(empty, col, "is missing")
        ok = np.isfinite(vals)
        if positive:
            self._flag(ok & (vals <= 0), col, "must be positive")
        elif nonneg:
            self._flag(ok & (vals < 0), col, "must not be negative")
        return vals

    def date(self, col: str) -> np.ndarray:
        """ISO (optionally with a time), MM/DD/YYYY or YYYYMMDD; returns datetime64[D]. Each distinct
        value is parsed once (a file has a few dates and a million rows)."""
        values, index = self.distinct(col)
        out = np.array([_parse_date(v) for v in values] + [None], dtype="datetime64[D]")[:-1]
        if not values.size:
            return np.empty(0, "datetime64[D]")
        if np.isnat(out).any():
            self._flag(np.isnat(out)[index], col, "is not a date (YYYY-MM-DD, MM/DD/YYYY or YYYYMMDD)")
        return out[index]

    def right(self, col: str) -> np.ndarray:
        """'C'/'P' (also call/put, any case) -> is_call. Decided once per distinct value."""
        values, index = self.distinct(col)
        up = [str(v).upper() for v in values]
        call = np.array([u in ("C", "CALL") for u in up] + [False])[:-1]
        bad = np.array([u not in ("C", "CALL", "P", "PUT") for u in up] + [False])[:-1]
        self._flag(bad[index], col, "is not C or P")
        return call[index]

    def iv(self, col: str, *, required: bool = True) -> np.ndarray:
        vals = self.number(col, required=required, nonneg=not required, positive=required)
        self._flag(np.isfinite(vals) & (vals > IV_MAX), col, f"is above {IV_MAX:g}: IVs are decimals (0.25 for 25%)")
        return vals

    def check(self) -> None:
        """Raise BadInput naming the first malformed row (file:line) when any row was malformed."""
        if not self.problems:
            return
        self.problems.sort()
        line, msg = self.problems[0]
        more = max(int(self.bad_rows.sum()), len({ln for ln, _ in self.problems})) - 1
        tail = f" ({more:,} more malformed rows)" if more > 0 else ""
        raise BadInput(f"{self.path}:{line}: {msg}{tail}")


_DATE_RE = re.compile(DATE_SHAPE)


def _parse_date(value) -> np.datetime64:
    """One text date (DATE_SHAPE: only a time may follow it, '2026-11-20junk' is not a date) -> NaT
    when it is none."""
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        return np.datetime64("NaT")
    head = value[:10]
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d"):
        try:
            return np.datetime64(dt.datetime.strptime(head, fmt).date(), "D")
        except ValueError:
            continue
    return np.datetime64("NaT")


def _blank_rows(cols: list, n: int) -> np.ndarray | None:
    """Rows whose every field is empty (a line of commas), or None when there is none: only the rows
    empty in the first column are looked at in the others."""
    if not cols or n == 0:
        return None
    blank = _empty(cols[0])
    for c in cols[1:]:
        if not blank.any():
            return None
        rows = np.flatnonzero(blank)
        blank[rows] = _empty(c.take(rows))
    return blank if blank.any() else None


def _empty(col) -> np.ndarray:
    """Per value of a column as read: whether its field was empty (a converted column's null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    blank = strings([""])[0]  # an Arrow scalar: a Python "" would be converted through pandas' shim
    if pa.types.is_floating(col.type):
        return to_numpy(col.is_null())
    if pa.types.is_dictionary(col.type):
        parts = [to_numpy(pc.equal(c.dictionary, blank))[to_numpy(c.indices)] for c in col.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    return to_numpy(pc.equal(col, blank))


def _decoded(col, filtered: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Table.distinct of a column the reader coded (Arrow dictionary chunks): the distinct stripped
    values and each row's position among them, from the dictionary's few values, not the rows.
    `filtered`: rows were left out after the read (blank lines), whose values may be in no row left;
    otherwise every value of a chunk's dictionary is one of its rows' (Arrow codes a block's values
    as it reads them), and the count of each value's rows is not needed."""
    import pyarrow.compute as pc

    col = col.unify_dictionaries()
    chunks = [c for c in col.chunks if len(c)]
    if not chunks:
        return np.empty(0, dtype=object), np.empty(0, np.intp)
    raw = pc.utf8_trim_whitespace(chunks[0].dictionary).to_pylist()
    first: dict[str, int] = {}  # two raw values may strip alike (' SPX' and 'SPX'): one value then
    remap = np.array([first.setdefault(v, len(first)) for v in raw] + [0], dtype=np.intp)[:-1]
    index = np.concatenate([to_numpy(c.indices) for c in chunks], dtype=np.intp)
    if len(first) < remap.size:  # else the remap is the identity: a gather of a million rows saved
        index = remap[index]
    values = np.array(list(first) + [None], dtype=object)[:-1]
    if not filtered:
        return values, index
    used = np.bincount(index, minlength=values.size) > 0
    if not used.all():  # values of blank lines only are no values of the table's rows
        values, index = values[used], (np.cumsum(used) - 1)[index]
    return values, index


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


GAMMA_ROUNDING = 1e-9  # a vendor gamma this close to zero is zero written with rounding noise


def vendor_gamma(table: Table, col: str, notes: list[str]) -> np.ndarray:
    """A vendor's gamma column: blank is NaN; a tiny negative value (ORATS writes -1.29661e-14 for deep
    in-the-money strikes) is zero; a clearly negative one is not a gamma, so NaN, counted in `notes`.
    None of it rejects the file: the engine computes its own gamma unless told to use the vendor's."""
    g = table.number(col, required=False)
    g = np.where(np.abs(g) < GAMMA_ROUNDING, 0.0, g)
    negative = np.isfinite(g) & (g < 0)
    if negative.any():
        notes.append(f"{plural(int(negative.sum()), 'negative vendor gamma')} ({col}) ignored")
    return np.where(negative, np.nan, g)


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


def session_check(table: Table, as_of: np.ndarray, col: str) -> None:
    """Every as-of date must be an NYSE session that has closed."""
    early = as_of < np.datetime64(CALENDAR_START, "D")
    if early.any():
        table._report(early, col, as_of.astype(str), f"is before the NYSE calendar's start {CALENDAR_START}")
        return
    if as_of.size == 0:
        return
    days, at = unique_days(as_of)  # a file has a few dates
    first, last = days[0].astype(dt.date), days[-1].astype(dt.date)
    known = {np.datetime64(s.date, "D") for s in sessions_between(first, last)}
    not_session = np.array([d not in known for d in days] + [False])[:-1]
    if not_session.any():  # the dates as text only for a message: a million of them cost a second
        table._report(not_session[at], col, as_of.astype(str), "is not an NYSE session")
    done = np.datetime64(last_completed_session().date, "D")
    if days[-1] > done:
        table._report(as_of > done, col, as_of.astype(str), "is after the last completed session")


def expiry_check(table: Table, as_of: np.ndarray, expiry: np.ndarray, col: str) -> None:
    if (expiry < as_of).any():
        table._report(expiry < as_of, col, expiry.astype(str), "is before the chain's date")


def chain_index(underlying: np.ndarray, as_of: np.ndarray) -> tuple[np.ndarray, list[tuple[str, np.datetime64]]]:
    """(codes, chains): per row the index of its (underlying, as-of date) in `chains`, which is sorted.
    Hashing the few distinct values, not a string per row: files have a million rows and a few
    thousand chains."""
    import pandas as pd  # lazy: its import is a sixth of a second of start-up

    u_code, u_names = pd.factorize(np.asarray(underlying, dtype=object))
    return coded_chain_index(u_code, np.asarray(u_names, dtype=object), as_of)


def coded_chain_index(u_code: np.ndarray, u_names: np.ndarray, as_of: np.ndarray
                      ) -> tuple[np.ndarray, list[tuple[str, np.datetime64]]]:
    """chain_index of rows whose underlying is u_names[u_code] (u_names may repeat a name: a reader's
    distinct raw values, cased or stripped alike). By tables over the few names and days, no sort of
    the rows."""
    names, remap = np.unique(np.asarray(u_names, dtype=object).astype(str), return_inverse=True)
    u = remap.reshape(-1)[u_code] if u_code.size else np.zeros(0, np.intp)
    days = np.asarray(as_of).astype("datetime64[D]").astype(np.int64)
    if days.size == 0:
        return np.zeros(0, np.int64), []
    lo = int(days.min())
    n_days = int(days.max()) - lo + 1
    pairs, codes = dense_codes(u.astype(np.int64) * n_days + (days - lo))
    # pairs ascend by (name, day) and names are sorted: the chains come out sorted, codes index them.
    chains = [(str(names[p // n_days]), np.datetime64(int(p % n_days) + lo, "D")) for p in pairs.tolist()]
    return codes.astype(np.int64), chains


DENSE_SPAN_MAX = 50_000_000  # beyond this span of values a sort is cheaper than a table over it


def dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True) for integers in a bounded span (dates, codes x days), by
    a table over the span instead of a sort of a million rows."""
    v = np.asarray(values, dtype=np.int64)
    if v.size == 0:
        return v, np.empty(0, np.intp)
    lo, hi = int(v.min()), int(v.max())
    if hi - lo >= DENSE_SPAN_MAX:
        return np.unique(v, return_inverse=True)
    present = np.zeros(hi - lo + 1, dtype=bool)
    at = v - lo
    present[at] = True
    if present.all():  # every value of the span occurs (a file of one day: the names' codes): no gather
        return np.arange(lo, hi + 1, dtype=np.int64), at
    return np.flatnonzero(present) + lo, (np.cumsum(present) - 1)[at]


def unique_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(days, return_inverse=True) for dates, without a sort of a million rows (dense_codes)."""
    uniq, inv = dense_codes(np.asarray(days).astype("datetime64[D]").astype(np.int64))
    return uniq.astype("datetime64[D]"), inv
