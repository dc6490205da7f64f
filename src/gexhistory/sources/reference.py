"""A published GEX series to validate the modelled chain against (docs/validate.md): read and checked, nothing more.

The file is a CSV with a `date` column, one close column (any name, e.g. `spx_close`) and a `gex`
column (SqueezeMetrics' convention: calls +, puts -). pipeline/validate.py runs the model over it.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gexhistory.engine.validation import WARMUP_SESSIONS
from gexhistory.errors import BadInput


@dataclass
class Reference:
    dates: list[dt.date]
    close: np.ndarray
    gex: np.ndarray
    close_column: str
    path: str


def read_reference(path: str | Path) -> Reference:
    """Read and check a reference file; any defect is BadInput naming the file and line."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            body = list(reader)
    except FileNotFoundError:
        raise BadInput(f"reference file {p} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"reference file {p} cannot be read: {exc}") from None
    if not header:
        raise BadInput(f"reference file {p} is empty")
    names = [h.strip().lower() for h in header]
    if "date" not in names or "gex" not in names:
        raise BadInput(f"{p}: header must have columns date, a close column and gex; got {','.join(header)}")
    others = [j for j, n in enumerate(names) if n not in ("date", "gex")]
    if len(others) != 1:
        raise BadInput(f"{p}: expected exactly one close column besides date and gex; got {','.join(header)}")
    jd, jg, jc = names.index("date"), names.index("gex"), others[0]
    dates: list[dt.date] = []
    close, gex = [], []
    for line_no, row in enumerate(body, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise BadInput(f"{p}:{line_no}: expected {len(header)} fields, got {len(row)}")
        try:
            d = dt.date.fromisoformat(row[jd].strip())
            c, g = float(row[jc]), float(row[jg])
        except ValueError:
            raise BadInput(f"{p}:{line_no}: bad date or number in {','.join(row)!r}") from None
        if not (math.isfinite(c) and c > 0 and math.isfinite(g)):
            raise BadInput(f"{p}:{line_no}: close must be a positive number and gex finite")
        if dates and d <= dates[-1]:
            raise BadInput(f"{p}:{line_no}: dates must be strictly increasing ({d} after {dates[-1]})")
        dates.append(d)
        close.append(c)
        gex.append(g)
    if len(dates) < WARMUP_SESSIONS + 10:
        raise BadInput(f"{p}: {len(dates)} data rows; at least {WARMUP_SESSIONS + 10} are needed "
                       f"({WARMUP_SESSIONS} warm-up sessions)")
    return Reference(dates, np.array(close), np.array(gex), header[jc].strip(), str(p))
