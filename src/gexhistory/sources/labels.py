"""The data_source labels that rows carry, one per kind of price source.

Kept apart from the sources themselves so that a run can name its source (and record the run)
before importing the code, and numpy, that only computing needs.
"""

from __future__ import annotations

from pathlib import Path

SYNTHETIC = "synthetic"  # the seeded synthetic market
POLYGON = "polygon"  # Massive (formerly Polygon.io) aggregates
LABEL_MAX = 64  # the data_source column's width


def csv_label(path: str | Path) -> str:
    """'csv:<file name>', cut to the column's width."""
    return ("csv:" + Path(path).name)[:LABEL_MAX]
