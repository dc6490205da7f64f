"""What every chain-file importer shares: reading a CSV with exact line numbers, strict vectorised
parsing that reports the first malformed row as file:line, and the record a parser returns (ChainRows:
the file's contracts as it gives them). What is derived from them (implied vols, spots from put-call
parity, OptionChain records per underlying and date) is pipeline/chain_prep.py's."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gexhistory.calendar import last_completed_session, sessions_between
from gexhistory.errors import BadInput

LABEL_MAX = 64  # chain_source column width
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
    notes: list[str] = field(default_factory=list)
    derive_iv: bool = True  # False: the file's IVs as given, every contract kept (generic files)
    zero_oi_note: bool = True  # say how many contracts were left out for zero OI
    no_iv_note: str = "contracts with OI but no IV left out"

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
    """A chain file's rows as strings, with the file line of every row and collected row problems."""

    def __init__(self, path: str, df):
        self.path = path
        df.columns = [norm_header(c) for c in df.columns]
        blank = (df == "").all(axis=1).to_numpy()
        self.lines = (np.arange(len(df)) + 2)[~blank]  # line 1 is the header
        self.df = df[~blank].reset_index(drop=True)
        self.problems: list[tuple[int, str]] = []
        self._text: dict[str, np.ndarray] = {}

    @property
    def columns(self) -> set[str]:
        return set(self.df.columns)

    def __len__(self) -> int:
        return len(self.df)

    def first(self, *names: str) -> str | None:
        return next((n for n in names if n in self.columns), None)

    def text(self, col: str) -> np.ndarray:
        if col not in self._text:  # stripping is the slow part of parsing: once per column
            self._text[col] = self.df[col].str.strip().to_numpy(dtype=object)
        return self._text[col]

    def _report(self, bad: np.ndarray, col: str, values, what: str) -> None:
        for i in np.flatnonzero(bad)[:3]:
            self.problems.append((int(self.lines[i]), f"{col} {values[i]!r} {what}"))
        if bad.sum() > 3:
            self.problems.append((int(self.lines[np.flatnonzero(bad)[3]]), f"{col}: {int(bad.sum())} bad values"))

    def number(self, col: str, *, required: bool = True, positive: bool = False, nonneg: bool = False) -> np.ndarray:
        raw = self.text(col)
        vals = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
        empty = raw == ""
        bad = ~np.isfinite(vals) & ~empty
        self._report(bad, col, raw, "is not a number")
        if required:
            self._report(empty, col, raw, "is missing")
        ok = np.isfinite(vals)
        if positive:
            self._report(ok & (vals <= 0), col, raw, "must be positive")
        elif nonneg:
            self._report(ok & (vals < 0), col, raw, "must not be negative")
        return vals

    def date(self, col: str) -> np.ndarray:
        """ISO (optionally with a time), MM/DD/YYYY or YYYYMMDD; returns datetime64[D]."""
        raw = pd.Series(self.text(col)).str.slice(0, 10)
        out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
        for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d"):
            out = out.fillna(pd.to_datetime(raw, format=fmt, errors="coerce"))
        bad = out.isna().to_numpy()
        self._report(bad, col, self.text(col), "is not a date (YYYY-MM-DD, MM/DD/YYYY or YYYYMMDD)")
        return out.to_numpy().astype("datetime64[D]")

    def right(self, col: str) -> np.ndarray:
        """'C'/'P' (also call/put, any case) -> is_call."""
        raw = self.text(col)
        up = np.array([str(v).upper() for v in raw], dtype=object)
        is_call = np.isin(up, ["C", "CALL"])
        bad = ~is_call & ~np.isin(up, ["P", "PUT"])
        self._report(bad, col, raw, "is not C or P")
        return is_call

    def iv(self, col: str, *, required: bool = True) -> np.ndarray:
        vals = self.number(col, required=required, nonneg=not required, positive=required)
        self._report(np.isfinite(vals) & (vals > IV_MAX), col, self.text(col),
                     f"is above {IV_MAX:g}: IVs are decimals (0.25 for 25%)")
        return vals

    def check(self) -> None:
        """Raise BadInput naming the first malformed row (file:line) when any row was malformed."""
        if not self.problems:
            return
        self.problems.sort()
        line, msg = self.problems[0]
        more = len({ln for ln, _ in self.problems}) - 1
        tail = f" ({more} more malformed rows)" if more > 0 else ""
        raise BadInput(f"{self.path}:{line}: {msg}{tail}")


def read_table(path: str) -> Table:
    """Read a CSV (or a .zip/.gz holding one) as strings; unreadable files are rejected whole."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            # Without an index column pandas only warns when the first row is longer than the header.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(p, dtype=str, keep_default_na=False, skip_blank_lines=False, index_col=False,
                             skipinitialspace=True, compression="infer", encoding="utf-8-sig")
    except pd.errors.ParserWarning:
        raise BadInput(f"{path}:2: wrong number of fields for the header") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise BadInput(f"{where}: wrong number of fields for the header") from None
    except (pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError, EOFError,
            zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput(f"{path}: not an option chain file (unreadable as CSV: {reason})") from None
    return Table(str(path), df.fillna(""))


def session_check(table: Table, as_of: np.ndarray, col: str) -> None:
    """Every as-of date must be an NYSE session that has closed."""
    days = np.unique(as_of)
    if days.size == 0:
        return
    first, last = days[0].astype(dt.date), days[-1].astype(dt.date)
    known = {np.datetime64(s.date, "D") for s in sessions_between(first, last)}
    bad = ~np.isin(as_of, np.array(sorted(known), dtype="datetime64[D]")) if known else np.ones(as_of.size, bool)
    table._report(bad, col, as_of.astype(str), "is not an NYSE session")
    done = np.datetime64(last_completed_session().date, "D")
    table._report(as_of > done, col, as_of.astype(str), "is after the last completed session")


def expiry_check(table: Table, as_of: np.ndarray, expiry: np.ndarray, col: str) -> None:
    table._report(expiry < as_of, col, expiry.astype(str), "is before the chain's date")


def chain_index(underlying: np.ndarray, as_of: np.ndarray) -> tuple[np.ndarray, list[tuple[str, np.datetime64]]]:
    """(codes, chains): per row the index of its (underlying, as-of date) in `chains`, which is sorted.
    Hashing the few distinct values, not a string per row: files have a million rows and a few
    thousand chains."""
    days = np.asarray(as_of).astype("datetime64[D]")
    u_code, u_names = pd.factorize(np.asarray(underlying, dtype=object))
    d_code, d_vals = pd.factorize(days.astype(np.int64))
    pair_code, pairs = pd.factorize(u_code.astype(np.int64) * max(len(d_vals), 1) + d_code)
    nd = max(len(d_vals), 1)
    chains = [(str(u_names[p // nd]), np.datetime64(int(d_vals[p % nd]), "D")) for p in pairs.tolist()]
    order = sorted(range(len(chains)), key=lambda j: chains[j])
    rank = np.empty(len(chains), dtype=np.int64)
    rank[order] = np.arange(len(chains))
    return rank[pair_code], [chains[j] for j in order]


def chain_keys(underlying: np.ndarray, as_of: np.ndarray) -> np.ndarray:
    """'UND|YYYY-MM-DD' per row (the keys of ChainRows.quoted_spots)."""
    codes, chains = chain_index(underlying, as_of)
    keys = np.array([f"{u}|{d}" for u, d in chains] or [""], dtype=object)
    return keys[codes] if codes.size else np.empty(0, dtype=object)


