"""A published GEX series to validate the modelled chain against (docs/validate.md): read and checked, nothing more.

The file is a CSV with a `date` column (YYYY-MM-DD), a close column and a `gex` column
(SqueezeMetrics' convention: calls +, puts -). Two layouts are read as they are:
- SqueezeMetrics' DIX.csv as downloaded: `date,price,dix,gex` (the S&P 500 close is `price`; the
  dark-index column `dix` is not used);
- the project's files: `date,spx_close,gex`.
The close column is found by name (see `_close_column`); every other column is ignored by name, and
the names ignored are reported. pipeline/validate.py runs the model over the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gexhistory.engine.validation import WARMUP_SESSIONS
from gexhistory.errors import BadFile

CLOSE_NAMES = ("price", "close")  # DIX.csv calls the S&P 500 close `price`


@dataclass
class Reference:
    dates: list[dt.date]
    close: np.ndarray
    gex: np.ndarray
    close_column: str
    path: str
    ignored_columns: list[str] = field(default_factory=list)


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
    dates: list[dt.date] = []
    close, gex = [], []
    for line_no, row in enumerate(body, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise BadFile(f"{p}:{line_no}: expected {len(header)} fields, got {len(row)}")
        try:
            d = dt.date.fromisoformat(row[jd].strip())
            c, g = float(row[jc]), float(row[jg])
        except ValueError:
            raise BadFile(f"{p}:{line_no}: bad date or number in {','.join(row)!r}") from None
        if not (math.isfinite(c) and c > 0 and math.isfinite(g)):
            raise BadFile(f"{p}:{line_no}: close must be a positive number and gex finite")
        if dates and d <= dates[-1]:
            raise BadFile(f"{p}:{line_no}: dates must be strictly increasing ({d} after {dates[-1]})")
        dates.append(d)
        close.append(c)
        gex.append(g)
    if len(dates) < WARMUP_SESSIONS + 10:
        raise BadFile(f"{p}: {len(dates)} data rows; at least {WARMUP_SESSIONS + 10} are needed "
                      f"({WARMUP_SESSIONS} warm-up sessions)")
    ignored = [header[j].strip() for j in range(len(header)) if j not in (jd, jg, jc)]
    return Reference(dates, np.array(close), np.array(gex), header[jc].strip(), str(p), ignored)
