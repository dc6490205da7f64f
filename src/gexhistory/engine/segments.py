"""Reductions over contiguous segments of flat arrays: the engine lays several sessions' snapshots end to
end and reduces each snapshot's run on its own.

A segment's result depends only on its own elements, in their own order: never on which other segments
share the array. That is what keeps a session's numbers identical whether a run computed it alone, in a
batch of 64, or after resuming from a crash at another batch boundary.
"""

from __future__ import annotations

import numpy as np


def lengths_to_starts(lengths: np.ndarray) -> np.ndarray:
    """(n+1,) offsets: segment i is [starts[i], starts[i+1])."""
    out = np.zeros(len(lengths) + 1, dtype=np.intp)
    np.cumsum(lengths, out=out[1:])
    return out


def expand(starts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the segments `rows` of a layout with offsets `starts`: the flat element indices of those
    segments, in order, and for each the position in `rows` it belongs to."""
    rows = np.asarray(rows, dtype=np.intp)
    lo, hi = starts[rows], starts[rows + 1]
    n = hi - lo
    total = int(n.sum())
    owner = np.repeat(np.arange(rows.size), n)
    first = lengths_to_starts(n)
    return np.arange(total) - np.repeat(first[:-1], n) + np.repeat(lo, n), owner


def seg_sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum of each segment along the last axis (0 for an empty one). np.add.reduceat sums each segment
    over its own elements only. It is given the non-empty segments alone: an empty one would read as
    its neighbour's element, and clipping its start would cut the segment before it short."""
    n = starts.size - 1
    full = starts[1:] > starts[:-1]
    out = np.zeros(values.shape[:-1] + (n,), dtype=np.result_type(values.dtype, np.float64))
    if full.any():
        out[..., full] = np.add.reduceat(values, starts[:-1][full], axis=-1)
    return out


def seg_min(values: np.ndarray, starts: np.ndarray, empty=np.inf) -> np.ndarray:
    """Smallest value of each segment (`empty` for an empty one)."""
    full = starts[1:] > starts[:-1]
    out = np.full(starts.size - 1, empty, dtype=np.result_type(values.dtype, type(empty)))
    if full.any():
        out[full] = np.minimum.reduceat(values, starts[:-1][full])
    return out


def seg_argmax(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Flat index of each segment's largest value, the first on ties; -1 for an empty segment or one
    whose values are all -inf (nothing eligible)."""
    n = starts.size - 1
    out = np.full(n, -1, dtype=np.intp)
    full = np.flatnonzero(starts[1:] > starts[:-1])
    if full.size == 0:
        return out
    lo = starts[:-1][full]
    best = np.maximum.reduceat(values, lo)
    hit = values == np.repeat(best, np.diff(np.append(lo, values.size)))
    first = np.minimum.reduceat(np.where(hit, np.arange(values.size), values.size), lo)
    ok = best > -np.inf
    out[full[ok]] = first[ok]
    return out

