"""What every chain-file importer shares: a file's rows with exact line numbers (Table; reader.py reads
the file into one), strict vectorised parsing that reports the first malformed row as file:line, and
the record a parser returns (ChainRows: the file's contracts as it gives them). What is derived from
them (implied vols, spots from put-call parity, OptionChain records per underlying and date) is
pipeline/chain_prep.py's."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
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
