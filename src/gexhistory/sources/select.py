"""Choosing the price source from --source and the environment.

auto: Massive/Polygon when POLYGON_API_KEY or MASSIVE_API_KEY is set (environment or ./.env, which
the CLI loads), the CSV file when --bars is given, else the labelled synthetic market. A configured
key never silently falls back to synthetic data: provider failures end the run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gexhistory.errors import BadInput
from gexhistory.sources import labels

if TYPE_CHECKING:
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


def choose_source(name: str, bars: str | None = None) -> str:
    """The kind of source --source and --bars ask for: 'synthetic', 'polygon' or 'csv' (BadInput when
    they contradict each other, or the provider has no key)."""
    if name not in SOURCES:
        raise BadInput(f"unknown source {name!r}: choose one of {', '.join(SOURCES)}")
    if name == "auto":
        name = "csv" if bars else ("polygon" if api_key_configured() else "synthetic")
    if bars and name != "csv":
        raise BadInput(f"--bars is for --source csv, not --source {name}")
    if name == "csv" and not bars:
        raise BadInput("--source csv needs --bars FILE (date,open,high,low,close,volume)")
    if name == "polygon" and api_key() is None:
        raise BadInput("--source polygon needs an API key: set POLYGON_API_KEY or MASSIVE_API_KEY "
                       "(environment or ./.env)")
    return name


def source_label(kind: str, bars: str | None = None) -> str:
    """The data_source label of a kind of source, known before the source is opened."""
    return {"synthetic": labels.SYNTHETIC, "polygon": labels.POLYGON}.get(kind) or labels.csv_label(bars or "")


def select_source(name: str, *, seed: int, bars: str | None = None, rate: float | None = None,
                  symbols: list[str] | None = None) -> PriceSource:
    """The price source --source/--bars ask for, opened. Each is imported only once chosen: numpy and
    the provider's HTTP client are not needed to plan a run with nothing to compute."""
    kind = choose_source(name, bars)
    if kind == "csv":
        from gexhistory.sources.csv_bars import CsvBars  # lazy: imported once chosen

        return CsvBars(bars, symbols)
    if kind == "polygon":
        from gexhistory.sources.massive import MassiveSource  # lazy: imported once chosen

        return MassiveSource.from_env(api_key(), rate)
    from gexhistory.sources.synthetic import SyntheticMarket  # lazy: imported once chosen

    return SyntheticMarket(seed)
