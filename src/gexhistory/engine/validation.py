"""How close one GEX series comes to another (docs/validate.md): Spearman rank correlation, sign agreement,
precision/recall of negative-GEX days, and the naive drawdown feature the model must beat.

pipeline/validate.py runs the chain model over a reference file's prices (sources/reference.py) and
scores it with these. The first WARMUP_SESSIONS sessions of a file are left out of every score: the
model's open interest starts empty at the file's first date.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

WARMUP_SESSIONS = 60  # OI of the expiries that carry most gamma (<= 60 DTE) is built up by then
BASELINE_WINDOW = 60  # the naive feature the model must beat: close / max(last 60 closes) - 1


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    mean_rank = (starts + ends + 1) / 2.0  # mean of starts+1 .. ends
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho: Pearson correlation of the average ranks (NaN when either side is constant)."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def compare(model: np.ndarray, ref: np.ndarray) -> dict:
    """n, Spearman, sign agreement, and precision/recall of the reference's negative days."""
    model, ref = np.asarray(model, float), np.asarray(ref, float)
    n = int(model.size)
    if n == 0:
        return {"n": 0, "spearman": None, "sign_agreement": None, "negative_precision": None,
                "negative_recall": None}
    pred_neg, true_neg = model < 0, ref < 0
    hits = int((pred_neg & true_neg).sum())
    rho = spearman(model, ref) if n > 1 else float("nan")
    return {
        "n": n,
        "spearman": None if math.isnan(rho) else rho,
        "sign_agreement": float(((model > 0) == (ref > 0)).mean()),
        # None, not 0: with no negative days predicted (or present) the ratio does not exist.
        "negative_precision": hits / int(pred_neg.sum()) if pred_neg.any() else None,
        "negative_recall": hits / int(true_neg.sum()) if true_neg.any() else None,
    }


def drawdown_feature(close: np.ndarray, window: int = BASELINE_WINDOW) -> np.ndarray:
    """close / (max of the last `window` closes, today included) - 1: the naive baseline."""
    c = np.asarray(close, float)
    padded = np.r_[np.full(window - 1, c[0]), c]
    return c / sliding_window_view(padded, window).max(axis=1) - 1.0
