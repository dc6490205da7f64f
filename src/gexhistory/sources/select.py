"""Choosing the price source from --source and the environment."""

from __future__ import annotations

import os

from gexhistory.errors import BadInput, WorkFailed
from gexhistory.sources.base import PriceSource

SOURCES = ("auto", "polygon", "synthetic", "csv")
KEY_VARS = ("POLYGON_API_KEY", "MASSIVE_API_KEY")


def api_key_configured() -> bool:
    return any(os.environ.get(v) for v in KEY_VARS)


def select_source(name: str, *, seed: int, bars: str | None = None, rate: float | None = None) -> PriceSource:
    if name not in SOURCES:
        raise BadInput(f"unknown source {name!r}: choose one of {', '.join(SOURCES)}")
    if name == "auto":
        name = "polygon" if api_key_configured() else "synthetic"
    if name == "synthetic":
        from gexhistory.sources.synthetic import SyntheticMarket

        return SyntheticMarket(seed)
    raise WorkFailed(f"the {name} source is not available in this build")
