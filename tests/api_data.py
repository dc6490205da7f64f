"""The stored database of the API and export tests (conftest's `stored_db`), and value normalisation.

`fill` backfills SPY and QQQ (synthetic, a fixed window) through `gx.backfill` itself, and IWM from a
CSV bars file (a real source: its bars land in price_bars).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd

import gexhistory as gx
from gexhistory.calendar import sessions_between
from gexhistory.store.schema import metadata
from helpers import engine_for

START, END = dt.date(2025, 5, 1), dt.date(2025, 7, 31)
SYNTHETIC = ["SPY", "QQQ"]
CSV_SYMBOL = "IWM"


def bars_file(path: Path) -> str:
    """Daily IWM bars for every session of the window: open/high/low/close/volume, deterministic."""
    lines = ["date,open,high,low,close,volume"]
    for i, s in enumerate(sessions_between(START, END)):
        close = 200 + 5 * math.sin(i / 6) + 0.1 * i
        o = close - 0.7 * math.cos(i)
        lines.append(f"{s.date},{o:.2f},{max(o, close) + 1.1:.2f},{min(o, close) - 0.9:.2f},{close:.2f},"
                     f"{1_000_000 + 1000 * i}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def empty_pg(url: str) -> None:
    eng = engine_for(url)
    metadata.drop_all(eng)
    eng.dispose()


def fill(db: str, folder: Path) -> dict:
    """Backfill the test content; returns the BackfillResults by name."""
    synthetic = gx.backfill(SYNTHETIC, start=START, end=END.isoformat(), source="synthetic", db=db)
    real = gx.backfill(CSV_SYMBOL, start=START, end=END, source="csv", bars=bars_file(folder / "iwm.csv"), db=db)
    return {"synthetic": synthetic, "csv": real}


def py(value):
    """One representation for a value read back (frame, Parquet, SQL): None for every kind of missing,
    ints for booleans, stored text for timestamps and dates."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, dt.datetime):  # pandas.Timestamp too
        if value.tzinfo is None:  # a date column, which pandas holds as midnight
            assert value.time() == dt.time(0), value
            return value.strftime("%Y-%m-%d")
        assert str(value.tzinfo) == "America/New_York", value.tzinfo
        return value.strftime("%Y-%m-%d %H:%M:%S")  # its New York wall clock, as stored
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
