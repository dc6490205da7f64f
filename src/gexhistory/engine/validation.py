"""How close the modelled chain's GEX comes to a published GEX series (SPEC §4.4).

The reference is a CSV with a `date` column, one close column (any name, e.g. `spx_close`) and a
`gex` column (SqueezeMetrics' convention: calls +, puts -). The chain model is run over the file's
own price series as SPX, and the modelled net GEX at each session's close is compared with the
reference: Spearman rank correlation, sign agreement, and precision/recall of negative-GEX days.

The metrics are reported on the sessions after `calibrated_until` (the years the model's parameters
were not fitted on) and, for reference, on the sessions up to it. The first WARMUP_SESSIONS sessions
of the file are left out of both: the model's open interest starts empty at the file's first date.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gexhistory.errors import BadInput

WARMUP_SESSIONS = 60  # OI of the expiries that carry most gamma (<= 60 DTE) is built up by then
BASELINE_WINDOW = 60  # the naive feature the model must beat: close / max(last 60 closes) - 1


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
    from numpy.lib.stride_tricks import sliding_window_view

    c = np.asarray(close, float)
    padded = np.r_[np.full(window - 1, c[0]), c]
    return c / sliding_window_view(padded, window).max(axis=1) - 1.0


def modelled_close_gex(symbol: str, dates: list[dt.date], close: np.ndarray, params=None, conv=None) -> np.ndarray:
    """Modelled net GEX at each session's close, the chain as known that morning (NaN at index 0).

    `dates` must be NYSE sessions (each expiry is placed on the calendar, and the close time sets
    the time to expiry). Net GEX comes from exposure.compute_gex at the close price, as the stored
    snapshots do, without the flip search that a comparison of levels does not need.
    """
    from gexhistory.calendar import sessions_between
    from gexhistory.engine.exposure import CHUNK_SESSIONS, Conventions, compute_gex

    conv = conv or Conventions()
    by_date = {s.date: s for s in sessions_between(dates[0], dates[-1])}
    missing = [d for d in dates if d not in by_date]
    if missing:
        raise BadInput(f"{missing[0]} is not an NYSE session ({len(missing)} such dates)")
    from gexhistory.pipeline.model_chains import chain_model

    model = chain_model(symbol, dates, close, None, params)
    out = np.full(len(dates), np.nan)
    for lo in range(1, len(dates), CHUNK_SESSIONS):
        idx = range(lo, min(lo + CHUNK_SESSIONS, len(dates)))
        snaps = compute_gex(model.chains_for(idx), [[close[i]] for i in idx], [[by_date[dates[i]].close] for i in idx],
                            conv, with_flip=False)
        out[lo:lo + len(idx)] = [s[0].net_gex for s in snaps]
    return out


def validate(ref: Reference, calibrated_until: dt.date | None = None, params=None, symbol: str = "SPX") -> dict:
    """The metrics of the model (and of the drawdown baseline) held out and in sample."""
    from gexhistory.engine.chain_model import CALIBRATED_UNTIL, ModelParams

    params = params or ModelParams()
    until = calibrated_until or CALIBRATED_UNTIL
    model = modelled_close_gex(symbol, ref.dates, ref.close, params)
    base = drawdown_feature(ref.close)
    idx = np.arange(len(ref.dates))
    after = np.array([d > until for d in ref.dates])
    held = after & (idx >= WARMUP_SESSIONS)
    ins = ~after & (idx >= WARMUP_SESSIONS)
    out = compare(model[held], ref.gex[held])
    out.update({
        "calibrated_until": until.isoformat(),
        "held_out": _span(ref.dates, held),
        "baseline_drawdown_60d_spearman": _rho(base[held], ref.gex[held]),
        "in_sample": {**compare(model[ins], ref.gex[ins]), **_span_dict(ref.dates, ins),
                      "baseline_drawdown_60d_spearman": _rho(base[ins], ref.gex[ins])},
        "warmup_sessions": WARMUP_SESSIONS,
        "symbol": symbol,
        "close_column": ref.close_column,
        "reference": ref.path,
        "chain_model": params.as_dict(),
    })
    return out


def _rho(a, b):
    if a.size < 2:
        return None
    r = spearman(a, b)
    return None if math.isnan(r) else r


def _span(dates, mask) -> str | None:
    sel = [d for d, m in zip(dates, mask) if m]
    return f"{sel[0]}..{sel[-1]}" if sel else None


def _span_dict(dates, mask) -> dict:
    return {"span": _span(dates, mask)}
