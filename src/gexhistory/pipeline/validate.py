"""`gexhistory validate`: the modelled chain's close GEX over a reference file's own prices, scored
against the reference's GEX (docs/validate.md).

The chain model is run over the file's price series as SPX, through the same code as a backfill
(pipeline/model_chains.py, engine.exposure.compute_gex), and the modelled net GEX at each session's
close is compared with the reference: Spearman rank correlation, sign agreement, and precision/recall
of negative-GEX days (engine/validation.py). A backfill of the same closes stores the same close net
GEX (tests/test_validate.py). The metrics are reported on the sessions after `calibrated_until` (the
years the model's parameters were not fitted on) and, for reference, on the sessions up to it.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from gexhistory.calendar import sessions_between
from gexhistory.engine.chain_model import CALIBRATED_UNTIL, ModelParams
from gexhistory.engine.exposure import CHUNK_SESSIONS, Conventions, compute_gex
from gexhistory.engine.validation import WARMUP_SESSIONS, compare, drawdown_feature, spearman
from gexhistory.errors import BadInput
from gexhistory.pipeline.model_chains import chain_model
from gexhistory.pipeline.runs import ProgressFn
from gexhistory.sources.reference import Reference
from gexhistory.words import plural


def modelled_close_gex(symbol: str, dates: list[dt.date], close: np.ndarray, params=None, conv=None,
                       progress: ProgressFn | None = None) -> np.ndarray:
    """Modelled net GEX at each session's close, the chain as known that morning (NaN at index 0).

    `dates` must be NYSE sessions (each expiry is placed on the calendar, and the close time sets
    the time to expiry). The chains are the backfill's (model_chains.chain_model) and net GEX comes from
    compute_gex at the close price, as the stored close snapshots do, without the flip search that a
    comparison of levels does not need. `progress(label, sessions done, sessions)` follows the chunks.
    """
    conv = conv or Conventions()
    by_date = {s.date: s for s in sessions_between(dates[0], dates[-1])}
    missing = [d for d in dates if d not in by_date]
    if missing:
        raise BadInput(f"{missing[0]} is not an NYSE session ({plural(len(missing), 'such date')})")
    model = chain_model(symbol, dates, close, None, params)
    out = np.full(len(dates), np.nan)
    for lo in range(1, len(dates), CHUNK_SESSIONS):
        idx = range(lo, min(lo + CHUNK_SESSIONS, len(dates)))
        snaps = compute_gex(model.chains_for(idx), [[close[i]] for i in idx], [[by_date[dates[i]].close] for i in idx],
                            conv, with_flip=False)
        out[lo:lo + len(idx)] = [s[0].net_gex for s in snaps]
        if progress:
            progress(f"validate {symbol}", idx.stop, len(dates))
    return out


def validate(ref: Reference, calibrated_until: dt.date | None = None, params=None, symbol: str = "SPX",
             progress: ProgressFn | None = None) -> dict:
    """The metrics of the model (and of the drawdown baseline) held out and in sample."""
    params = params or ModelParams()
    until = calibrated_until or CALIBRATED_UNTIL
    model = modelled_close_gex(symbol, ref.dates, ref.close, params, progress=progress)
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
