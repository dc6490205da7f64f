"""A published GEX series to validate the modelled chain against (docs/validate.md): read and checked, nothing more.

The file is a CSV with a `date` column (YYYY-MM-DD), a close column and a `gex` column
(SqueezeMetrics' convention: calls +, puts -). Two layouts are read as they are:
- SqueezeMetrics' DIX.csv as downloaded: `date,price,dix,gex` (the S&P 500 close is `price`; the
  dark-index column `dix` is not used);
- the project's files: `date,spx_close,gex`.
The close column is found by name (see `_close_column`); every other column is ignored by name, and
the names ignored are reported. pipeline/validate.py runs the model over the file.

A published series as downloaded may have holes that are not defects of the file: a session without a
GEX value (an empty field, or NaN / null / N/A: the day's figure not published yet, or never), a row
without a close, a row dated on a day the NYSE was closed, a session without a row. They are listed
(Reference.gaps), never a reason to refuse the file: a session without GEX stays in the price path (the
model needs every close) but is not scored; a row without a close, or on a closed day, is left out.
Text that is not a date or a number, a close <= 0, an infinite value, a wrong field count or a date out
of order is a defect of the file and an error.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gexhistory.calendar import sessions_between
from gexhistory.engine.validation import WARMUP_SESSIONS
from gexhistory.errors import BadFile

CLOSE_NAMES = ("price", "close")  # DIX.csv calls the S&P 500 close `price`
MISSING = frozenset({"", "nan", "null", "none", "na", "n/a", "#n/a"})  # a value not given (lower case)
MIN_SCORED = 10  # sessions with a GEX value after the warm-up: fewer cannot be scored


@dataclass
class Reference:
    dates: list[dt.date]
    close: np.ndarray
    gex: np.ndarray
    close_column: str
    path: str
    ignored_columns: list[str] = field(default_factory=list)
    # The rows read but not used whole (see the module docstring), each kind with its dates:
    # "no_gex" (in the price path, not scored), "no_close" and "closed_day" (left out); and "no_row",
    # the NYSE sessions within the file's span that it has no row for (the price path skips them).
    gaps: dict[str, list[dt.date]] = field(default_factory=dict)

    def scored(self) -> np.ndarray:
        """The sessions that can be compared: after the warm-up, with a GEX value."""
        return (np.arange(len(self.dates)) >= WARMUP_SESSIONS) & np.isfinite(self.gex)


def _close_column(names: list[str], header: list[str], p: Path) -> int:
    """Index of the close column, by name, in this order of preference:
    1. a column named `price` or `close` (DIX.csv; a plain OHLC export);
    2. a column whose name ends in `close` (`spx_close`);
    3. the one column besides date and gex, whatever its name (an older file's `px`).
    More than one candidate at the first level that has any is ambiguous, and an error."""
    rest = [j for j, n in enumerate(names) if n not in ("date", "gex")]
    for level in ([j for j in rest if names[j] in CLOSE_NAMES], [j for j in rest if names[j].endswith("close")]):
        if len(level) == 1:
            return level[0]
        if len(level) > 1:
            raise BadFile(f"{p}: more than one close column ({', '.join(header[j].strip() for j in level)}); "
                          f"keep one named price or close")
    if len(rest) == 1:
        return rest[0]
    raise BadFile(f"{p}: cannot tell which column is the close: name it price or close "
                  f"(got {','.join(header)})")


def read_reference(path: str | Path) -> Reference:
    """Read and check a reference file; any defect is BadFile (exit 2) naming the file and line."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            body = list(reader)
    except FileNotFoundError:
        raise BadFile(f"reference file {p} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadFile(f"reference file {p} cannot be read: {exc}") from None
    if not header:
        raise BadFile(f"reference file {p} is empty")
    names = [h.strip().lower() for h in header]
    if "date" not in names or "gex" not in names:
        raise BadFile(f"{p}: header must have columns date, a close column (price or close) and gex; "
                      f"got {','.join(header)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BadFile(f"{p}: column {twice[0]} appears more than once in the header")
    jd, jg, jc = names.index("date"), names.index("gex"), _close_column(names, header, p)
    gaps: dict[str, list[dt.date]] = {"no_gex": [], "no_close": [], "closed_day": [], "no_row": []}
    dates, close, gex = _on_sessions(*_rows(p, body, len(header), jd, jc, jg, gaps), gaps)
    if len(dates) < WARMUP_SESSIONS + MIN_SCORED:
        raise BadFile(f"{p}: {len(dates)} data rows; at least {WARMUP_SESSIONS + MIN_SCORED} are needed "
                      f"({WARMUP_SESSIONS} warm-up sessions)")
    ignored = [header[j].strip() for j in range(len(header)) if j not in (jd, jg, jc)]
    ref = Reference(dates, np.array(close), np.array(gex), header[jc].strip(), str(p), ignored,
                    {kind: days for kind, days in gaps.items() if days})
    scored = int(ref.scored().sum())
    if scored < MIN_SCORED:
        raise BadFile(f"{p}: {scored} sessions with a gex value after the {WARMUP_SESSIONS} "
                      f"warm-up sessions; at least {MIN_SCORED} are needed")
    return ref


def _rows(p: Path, body: list[list[str]], width: int, jd: int, jc: int, jg: int, gaps: dict):
    """The rows' dates, closes and GEX (NaN where not given), the rows without a close left out;
    those and the sessions without GEX go to gaps["no_close"] and gaps["no_gex"]."""
    dates: list[dt.date] = []
    close: list[float] = []
    gex: list[float] = []
    last: dt.date | None = None
    for line_no, row in enumerate(body, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != width:
            raise BadFile(f"{p}:{line_no}: expected {width} fields, got {len(row)}")
        try:
            d = dt.date.fromisoformat(row[jd].strip())
            c, g = _value(row[jc]), _value(row[jg])
        except ValueError:
            raise BadFile(f"{p}:{line_no}: bad date or number in {','.join(row)!r}") from None
        if not ((c is None or math.isfinite(c) and c > 0) and (g is None or math.isfinite(g))):
            raise BadFile(f"{p}:{line_no}: close must be a positive number and gex finite")
        if last is not None and d <= last:
            raise BadFile(f"{p}:{line_no}: dates must be strictly increasing ({d} after {last})")
        last = d
        if c is None:
            gaps["no_close"].append(d)
            continue
        if g is None:
            gaps["no_gex"].append(d)
        dates.append(d)
        close.append(c)
        gex.append(math.nan if g is None else g)
    return dates, close, gex


def _on_sessions(dates: list[dt.date], close: list[float], gex: list[float], gaps: dict):
    """The rows on NYSE sessions; the others go to gaps["closed_day"], and the sessions within the
    rows' span that have no row to gaps["no_row"]."""
    if not dates:
        return dates, close, gex
    sessions = [s.date for s in sessions_between(dates[0], dates[-1])]
    open_days = set(sessions)
    keep = [d in open_days for d in dates]
    if not all(keep):
        gaps["closed_day"] = [d for d, k in zip(dates, keep) if not k]
        gaps["no_gex"] = [d for d in gaps["no_gex"] if d in open_days]
        dates, close, gex = ([v for v, k in zip(col, keep) if k] for col in (dates, close, gex))
    if dates:
        held = set(dates) | set(gaps["no_close"])  # a row without a close is reported as such
        gaps["no_row"] = [d for d in sessions if dates[0] <= d <= dates[-1] and d not in held]
    return dates, close, gex


def _value(text: str) -> float | None:
    """A number, or None for a value not given (MISSING); ValueError for anything else."""
    t = text.strip()
    return None if t.lower() in MISSING else float(t)
