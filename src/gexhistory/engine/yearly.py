"""Per-calendar-year and per-span metrics of a modelled GEX series against a reference (pure helpers).

validation.compare gives one set of metrics for one selection of sessions; these split a series by
calendar year (or by any list of year spans) and add the level ratio, median(model) / median(ref) of
the absolute values, which says how far the modelled GEX is from the reference's scale.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from gexhistory.engine.validation import compare


def years_of(dates: list[dt.date]) -> np.ndarray:
    return np.fromiter((d.year for d in dates), dtype=np.int64, count=len(dates))


def level_ratio(model: np.ndarray, ref: np.ndarray) -> float | None:
    """median |model| / median |ref| (None without sessions or with a zero reference median)."""
    model, ref = np.asarray(model, float), np.asarray(ref, float)
    if model.size == 0:
        return None
    den = float(np.median(np.abs(ref)))
    return float(np.median(np.abs(model))) / den if den > 0 else None


def metrics(model: np.ndarray, ref: np.ndarray) -> dict:
    """compare() plus the level ratio and the share of negative sessions on each side."""
    model, ref = np.asarray(model, float), np.asarray(ref, float)
    out = compare(model, ref)
    out["level_ratio"] = level_ratio(model, ref)
    out["model_negative_share"] = float((model < 0).mean()) if model.size else None
    out["reference_negative_share"] = float((ref < 0).mean()) if ref.size else None
    return out


def by_year(dates: list[dt.date], model: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """{year: metrics} for each calendar year with at least one selected session (mask: which count)."""
    years = years_of(dates)
    sel = np.ones(years.size, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return {int(y): metrics(np.asarray(model)[sel & (years == y)], np.asarray(ref)[sel & (years == y)])
            for y in np.unique(years[sel]).tolist()}


def by_span(dates: list[dt.date], model: np.ndarray, ref: np.ndarray, spans: list[tuple[int, int]],
            mask: np.ndarray | None = None) -> dict:
    """{"Y0-Y1": metrics} over the selected sessions of each inclusive span of calendar years."""
    years = years_of(dates)
    sel = np.ones(years.size, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return {f"{a}-{b}": metrics(np.asarray(model)[sel & (years >= a) & (years <= b)],
                                np.asarray(ref)[sel & (years >= a) & (years <= b)])
            for a, b in spans}
