"""What every chain-file importer shares: reading a CSV with exact line numbers, strict vectorised
parsing that reports the first malformed row as file:line, and grouping rows into OptionChain records
(one per underlying and as-of date)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.errors import BadInput

LABEL_MAX = 64  # chain_source column width
IV_MAX = 10.0  # 1000%: a larger "IV" is a unit mistake (percent given for a decimal), not a quote


@dataclass
class ImportedChain:
    """One parsed chain plus what the file said about it (and how it was interpreted)."""

    chain: OptionChain
    fmt: str
    file: str
    label: str
    iv_source: np.ndarray  # per contract: 'f' from the file, 'p' from the option's price, 'i' interpolated
    file_spot: float | None = None
    file_spot_kind: str | None = None
    notes: list[str] = field(default_factory=list)


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
        import pandas as pd

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
        import pandas as pd

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
    import warnings
    import zipfile

    import pandas as pd

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
    from gexhistory.calendar import last_completed_session, sessions_between

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


def expiry_close_ts(expiry: np.ndarray) -> np.ndarray:
    """POSIX seconds of each expiration's close: the last session on or before the date (a Saturday
    expiration of old monthlies trades last on the Friday); 16:00 ET beyond the known calendar."""
    from gexhistory.calendar import ET, sessions_between

    uniq, inv = np.unique(expiry, return_inverse=True)
    closes = np.empty(uniq.size)
    calendar_end = sessions_between(dt.date.today(), dt.date.today() + dt.timedelta(days=800))
    last_known = calendar_end[-1].date if calendar_end else dt.date.today()
    for j, d in enumerate(uniq.astype(dt.date)):
        found = sessions_between(d - dt.timedelta(days=7), d) if d <= last_known else []
        if found:  # the session on the date, or the one before a weekend/holiday expiration
            closes[j] = found[-1].close.timestamp()
        else:
            closes[j] = dt.datetime.combine(d, dt.time(16, 0), tzinfo=ET).timestamp()
    return closes[inv]


def build_chains(*, path: str, fmt: str, label: str, underlying: np.ndarray, as_of: np.ndarray,
                 expiry: np.ndarray, strike: np.ndarray, is_call: np.ndarray, oi: np.ndarray, iv: np.ndarray,
                 iv_source: np.ndarray, lines: np.ndarray, gamma: np.ndarray | None = None,
                 spot: np.ndarray | None = None, spot_kind: str | None = None, group: np.ndarray | None = None,
                 notes: list[str] | None = None) -> list[ImportedChain]:
    """Rows -> one ImportedChain per (underlying, as_of), sorted. The same contract twice is a
    malformed row, except across `group` (e.g. SPX and SPXW roots of one expiration), where OI adds
    up and IV and gamma are OI-weighted."""
    import pandas as pd

    n = strike.size
    df = pd.DataFrame({
        "u": underlying.astype(str), "d": as_of, "e": expiry, "k": strike, "c": is_call, "oi": oi, "iv": iv,
        "src": iv_source, "line": lines, "g": gamma if gamma is not None else np.full(n, np.nan),
        "grp": group if group is not None else np.zeros(n, dtype=object),
        "ec": expiry_close_ts(expiry) if n else np.empty(0),
    })
    key = ["u", "d", "e", "k", "c"]
    dup = df.duplicated(key + ["grp"], keep="first").to_numpy()
    if dup.any():
        firsts = df.groupby(key + ["grp"], sort=False)["line"].transform("min").to_numpy()
        i = int(np.flatnonzero(dup)[0])
        raise BadInput(f"{path}:{int(df.loc[i, 'line'])}: duplicate contract (same as line {int(firsts[i])})")
    merged_note = None
    if df.duplicated(key, keep=False).any():
        w = np.where(df["oi"] > 0, df["oi"], 1e-12)
        df = df.assign(w=w, wiv=w * df["iv"], wg=w * df["g"])
        before = len(df)
        df = df.groupby(key, sort=False, as_index=False).agg(
            oi=("oi", "sum"), w=("w", "sum"), wiv=("wiv", "sum"), wg=("wg", "sum"), src=("src", lambda x: "i" if (x == "i").any() else max(x)),
            line=("line", "min"), ec=("ec", "first"))
        df["iv"] = df["wiv"] / df["w"]
        df["g"] = df["wg"] / df["w"]
        merged_note = f"{before - len(df)} contracts listed under two roots merged (OI added, IV OI-weighted)"
    out: list[ImportedChain] = []
    spot_by = None
    if spot is not None:
        sdf = pd.DataFrame({"u": underlying.astype(str), "d": as_of, "s": spot})
        sdf = sdf[np.isfinite(sdf["s"]) & (sdf["s"] > 0)]
        spot_by = sdf.groupby(["u", "d"])["s"].median().to_dict()
    for (u, d), g in df.sort_values(["u", "d", "e", "k", "c"]).groupby(["u", "d"], sort=True):
        e = g["e"].to_numpy().astype("datetime64[D]")
        gam = g["g"].to_numpy(dtype=float)
        chain = OptionChain(
            underlying=str(u), as_of=pd.Timestamp(d).date(), expiry=e, expiry_close=g["ec"].to_numpy(dtype=float),
            strike=g["k"].to_numpy(dtype=float), is_call=g["c"].to_numpy(dtype=bool),
            open_interest=g["oi"].to_numpy(dtype=float), iv=g["iv"].to_numpy(dtype=float), source=label,
            gamma=gam if np.isfinite(gam).any() else None,
        )
        s = spot_by.get((u, d)) if spot_by else None
        item = ImportedChain(chain, fmt, path, label, g["src"].to_numpy(dtype=object),
                             float(s) if s is not None else None, spot_kind if s is not None else None,
                             list(notes or []))
        if merged_note:
            item.notes.append(merged_note)
        out.append(item)
    return out


def session_close_ts(as_of: np.ndarray) -> np.ndarray:
    """POSIX seconds of each as-of session's close (the moment an EOD file's quotes describe)."""
    from gexhistory.calendar import session_on

    uniq, inv = np.unique(as_of, return_inverse=True)
    return np.array([session_on(d).close.timestamp() for d in uniq.astype(dt.date)])[inv]


def chain_keys(underlying: np.ndarray, as_of: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add(underlying.astype(str), "|"), as_of.astype(str))


def parity_spots(underlying, as_of, expiry, strike, is_call, mid) -> dict[str, float]:
    """Per chain ('UND|date'): the underlying implied by put-call parity from end-of-day mids, on the
    nearest expiry at least two days out that has call/put pairs."""
    import pandas as pd

    from gexhistory.engine.exposure import Conventions
    from gexhistory.engine.greeks import SECONDS_PER_YEAR
    from gexhistory.engine.implied import parity_spot

    conv = Conventions()
    t = (expiry_close_ts(expiry) - session_close_ts(as_of)) / SECONDS_PER_YEAR
    df = pd.DataFrame({"key": chain_keys(underlying, as_of), "e": expiry, "k": strike, "c": is_call, "m": mid, "t": t})
    df = df[np.isfinite(df["m"]) & (df["m"] > 0) & (df["t"] >= 2 / 365)]
    wide = df.pivot_table(index=["key", "t", "k"], columns="c", values="m", aggfunc="mean")
    out: dict[str, float] = {}
    if True not in wide.columns or False not in wide.columns:
        return out
    wide = wide.dropna().reset_index()
    for key, g in wide.groupby("key"):
        first = g[g["t"] == g["t"].min()]
        s = parity_spot(first[True], first[False], first["k"], first["t"], conv.r, conv.q)
        if s is not None and s > 0:
            out[str(key)] = s
    return out


def derive_ivs(*, underlying, as_of, expiry, strike, is_call, file_iv, mid=None, spot_by_chain=None):
    """IV per contract and where it came from: the file's own when positive ('f'); else from the
    option's end-of-day mid price by Black-Scholes at the chain's spot ('p'); else interpolated across
    strikes of the same expiry ('i'); NaN when none of these exists (the caller drops and says so)."""
    from gexhistory.engine.exposure import Conventions
    from gexhistory.engine.greeks import SECONDS_PER_YEAR
    from gexhistory.engine.implied import fill_iv_by_strike, implied_vol

    conv = Conventions()
    iv = np.where(np.isfinite(file_iv) & (file_iv > 0), file_iv, np.nan)
    src = np.where(np.isfinite(iv), "f", "").astype(object)
    if mid is not None and spot_by_chain:
        need = ~np.isfinite(iv)
        if need.any():
            keys = chain_keys(underlying[need], as_of[need])
            s = np.array([spot_by_chain.get(k, np.nan) for k in keys], dtype=float)
            t = (expiry_close_ts(expiry[need]) - session_close_ts(as_of[need])) / SECONDS_PER_YEAR
            got = implied_vol(mid[need], s, strike[need], t, conv.r, conv.q, is_call[need])
            iv[need] = got
            src[np.flatnonzero(need)[np.isfinite(got)]] = "p"
    before = np.isfinite(iv)
    iv = fill_iv_by_strike(np.char.add(chain_keys(underlying, as_of), expiry.astype(str)), strike, iv)
    src[np.isfinite(iv) & ~before] = "i"
    return iv, src


def keep_rows(arrays: dict, keep: np.ndarray) -> dict:
    return {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}
