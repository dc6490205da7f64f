"""Choosing the price source from --source and the environment.

auto: Massive/Polygon when POLYGON_API_KEY or MASSIVE_API_KEY is set (environment or ./.env, which
the CLI loads), the CSV file when --bars is given, else the labelled synthetic market. A configured
key never silently falls back to synthetic data: provider failures end the run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gexhistory.errors import BadInput

if TYPE_CHECKING:  # the sources themselves are imported only once chosen
    from gexhistory.sources.base import PriceSource

SOURCES = ("auto", "polygon", "synthetic", "csv")
KEY_VARS = ("POLYGON_API_KEY", "MASSIVE_API_KEY")


def api_key() -> str | None:
    for var in KEY_VARS:
        value = (os.environ.get(var) or "").strip()
        if value:
            return value
    return None


def api_key_configured() -> bool:
    return api_key() is not None


def select_source(name: str, *, seed: int, bars: str | None = None, rate: float | None = None,
                  symbols: list[str] | None = None) -> PriceSource:
    if name not in SOURCES:
        raise BadInput(f"unknown source {name!r}: choose one of {', '.join(SOURCES)}")
    if name == "auto":
        name = "csv" if bars else ("polygon" if api_key_configured() else "synthetic")
    if bars and name != "csv":
        raise BadInput(f"--bars is for --source csv, not --source {name}")
    if name == "csv":
        if not bars:
            raise BadInput("--source csv needs --bars FILE (date,open,high,low,close,volume)")
        from gexhistory.sources.csv_bars import CsvBars

        return CsvBars(bars, symbols)
    if name == "polygon":
        key = api_key()
        if key is None:
            raise BadInput("--source polygon needs an API key: set POLYGON_API_KEY or MASSIVE_API_KEY "
                           "(environment or ./.env)")
        from gexhistory.sources.massive import MassiveSource

        return MassiveSource.from_env(key, rate)
    from gexhistory.sources.synthetic import SyntheticMarket

    return SyntheticMarket(seed)
