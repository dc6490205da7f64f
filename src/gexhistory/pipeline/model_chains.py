"""The modelled chains of a price path: engine/chain_model.py's ChainModel, given the calendar it needs.

The engine reads no calendar (calendar lookups may write its cache file); this is where the sessions
of the span a path's expiries fall in (chain_model.sessions_span) are looked up and handed to it. The
backfill, validate and the strike profile all build their models here, so the same prices give them
the same chains.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from gexhistory.calendar import sessions_between
from gexhistory.engine.chain_model import ChainModel, ModelParams, sessions_span


def chain_model(symbol: str, dates: Sequence[dt.date], close: np.ndarray, volume: np.ndarray | None = None,
                params: ModelParams | None = None) -> ChainModel:
    """ChainModel(symbol, dates, close, volume, params) with the sessions it looks ahead to."""
    return ChainModel(symbol, list(dates), close, volume, params, sessions=sessions_between(*sessions_span(dates)))
