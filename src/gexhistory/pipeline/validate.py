"""`gexhistory validate`: the modelled chain's close GEX over a reference file's own prices, scored
against the reference's GEX (docs/validate.md).

The chain model is run over the file's price series as SPX, through the same code as a backfill
(pipeline/model_chains.py, engine.exposure.compute_gex), and the modelled net GEX at each session's
close is compared with the reference: Spearman rank correlation, sign agreement, precision/recall
of negative-GEX days (engine/validation.py) and the level, median |model| / median |reference|
(engine/yearly.py). A backfill of the same closes stores the same close net GEX
(tests/test_validate.py).

Three views, each labelled:
- held out: the sessions after `calibrated_until` (default chain_model.CALIBRATED_UNTIL, the last
  date the default parameters were fitted on): out of sample for the defaults;
- in sample: the sessions up to it, which the fit saw;
- cross-validation (default parameters only): each year of 2011-2022 scored with the parameters
  fitted without its two-year span (engine/folds.py), the out-of-sample figures for years the
  defaults saw.
Each view comes whole and per calendar year (`by_year`). Only sessions with a reference GEX value
are scored (Reference.scored); the file's holes are listed in the notes and in `reference_gaps`.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from gexhistory.calendar import sessions_between
from gexhistory.engine.chain_model import CALIBRATED_UNTIL, ModelParams, warmup_start
from gexhistory.engine.exposure import Conventions, compute_gex
from gexhistory.engine.folds import CROSSVALIDATION_COMMAND, fold_params
from gexhistory.engine.validation import WARMUP_SESSIONS, drawdown_feature, spearman
from gexhistory.engine.yearly import metrics, years_of
from gexhistory.errors import BadInput
from gexhistory.pipeline.model_chains import chain_model
from gexhistory.pipeline.runs import ProgressFn
from gexhistory.sources.reference import Reference
from gexhistory.words import first_of, plural

CROSS_VALIDATION = "cross-validation"  # the progress label of the folds' runs
PARTS = ("in_sample", "held_out", "out_of_fold")  # the order of a year's entries in by_year

MODEL_CHUNK = 48  # sessions modelled and computed per step (progress is reported between steps)


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
    for lo in range(1, len(dates), MODEL_CHUNK):
        idx = range(lo, min(lo + MODEL_CHUNK, len(dates)))
        snaps = compute_gex(model.chains_for(idx), [[close[i]] for i in idx], [[by_date[dates[i]].close] for i in idx],
                            conv, with_flip=False)
        out[lo:lo + len(idx)] = [s[0].net_gex for s in snaps]
        if progress:
            progress(f"validate {symbol}", idx.stop, len(dates))
    return out


def validate(ref: Reference, calibrated_until: dt.date | None = None, params=None, symbol: str = "SPX",
             cross_validate: bool = True, progress: ProgressFn | None = None) -> dict:
    """The metrics held out, in sample, per year, and (default parameters) cross-validated."""
    defaults = params is None
    params = params or ModelParams()
    until = calibrated_until or CALIBRATED_UNTIL
    model = modelled_close_gex(symbol, ref.dates, ref.close, params, progress=progress)
    base = drawdown_feature(ref.close)
    usable = ref.scored()
    after = np.array([d > until for d in ref.dates])
    held, ins = after & usable, ~after & usable
    out = _scores(model, ref.gex, base, held)
    out.update({
        "calibrated_until": until.isoformat(),
        "held_out": span_of(ref.dates, held),
        "in_sample": {**_scores(model, ref.gex, base, ins), "span": span_of(ref.dates, ins)},
        "by_year": _by_year(ref.dates, model, ref.gex, base, {"in_sample": ins, "held_out": held}),
        "cross_validation": (_cross_validation(ref, symbol, base, usable, progress)
                             if defaults and cross_validate else None),
        "notes": _notes(ref, until, held, defaults),
        "warmup_sessions": WARMUP_SESSIONS,
        "symbol": symbol,
        "close_column": ref.close_column,
        "ignored_columns": ref.ignored_columns,
        "reference_gaps": {kind: [d.isoformat() for d in days] for kind, days in ref.gaps.items()},
        "reference": ref.path,
        "chain_model": params.as_dict(),
    })
    return out


def _scores(model: np.ndarray, gex: np.ndarray, base: np.ndarray, sel: np.ndarray) -> dict:
    """The metrics of the sessions `sel`, with the drawdown baseline's Spearman on the same ones."""
    return {**metrics(model[sel], gex[sel]), "baseline_drawdown_60d_spearman": _rho(base[sel], gex[sel])}


def _by_year(dates, model, gex, base, parts: dict[str, np.ndarray]) -> list[dict]:
    """One entry per calendar year and part (a year cut by calibrated_until has two), year order."""
    years = years_of(dates)
    out = []
    for y in np.unique(years).tolist():
        for part in PARTS:
            sel = parts.get(part, np.zeros(years.size, bool)) & (years == y)
            if sel.any():
                out.append({"year": y, "part": part, "span": span_of(dates, sel), **_scores(model, gex, base, sel)})
    return out


def _cross_validation(ref: Reference, symbol: str, base: np.ndarray, usable: np.ndarray,
                      progress: ProgressFn | None = None) -> dict | None:
    """Each year of a fold's span scored with the parameters fitted without that span (engine/folds.py);
    `progress(CROSS_VALIDATION, folds done, folds)` follows them.

    The model is run only over the fold's span and the warm-up its chains need (chain_model.warmup_start):
    a chain depends on nothing earlier, nor on anything after its date, so this is the whole-file run's
    value at lower cost."""
    years = years_of(ref.dates)
    oof = np.full(len(ref.dates), np.nan)
    scored = np.zeros(len(ref.dates), bool)
    folds = []
    spans = fold_params()
    for k, (a, b, p) in enumerate(spans, 1):
        sel = usable & (years >= a) & (years <= b)
        if sel.any():
            idx = np.flatnonzero(sel)
            first_needed = warmup_start(ref.dates[idx[0]])
            lo = int(np.searchsorted(np.array(ref.dates), first_needed))
            hi = idx[-1] + 1
            oof[lo:hi][sel[lo:hi]] = modelled_close_gex(symbol, ref.dates[lo:hi], ref.close[lo:hi], p)[sel[lo:hi]]
            scored |= sel
            folds.append({"held_out_years": f"{a}-{b}", "span": span_of(ref.dates, sel),
                          "parameters": p.as_dict(), **_scores(oof, ref.gex, base, sel)})
        if progress:
            progress(CROSS_VALIDATION, k, len(spans))
    if not folds:
        return None
    by_year = _by_year(ref.dates, oof, ref.gex, base, {"out_of_fold": scored})
    rhos = [y["spearman"] for y in by_year if y["spearman"] is not None]
    return {
        "method": "each year scored with the ModelParams fitted on the reference without its two-year span "
                  f"(engine/folds.py, refitted by `{CROSSVALIDATION_COMMAND}`)",
        "pooled": _scores(oof, ref.gex, base, scored),
        "mean_year_spearman": float(np.mean(rhos)) if rhos else None,
        "folds": folds,
        "by_year": by_year,
    }


GAP_NOTES = {  # Reference.gaps kind -> what became of those rows
    "no_gex": "without a gex value: in the price path, not scored",
    "no_close": "without a close: left out",
    "closed_day": "on days the NYSE was closed: left out",
    "no_row": "within the file's dates without a row: the modelled price path skips them",
}


def _notes(ref: Reference, until: dt.date, held: np.ndarray, defaults: bool) -> list[str]:
    notes = [f"{plural(len(days), 'row' if kind != 'no_row' else 'NYSE session')} {GAP_NOTES[kind]} ({first_of(days, 3)})"
             for kind, days in ref.gaps.items()]
    if not held.any():
        notes.append(f"no session of this file is after {until}, the last date the parameters were fitted on: "
                     "every in_sample figure was seen by the fit. Out-of-sample figures: cross_validation "
                     f"(parameters fitted without each year; `{CROSSVALIDATION_COMMAND}` refits them), or a "
                     f"file with sessions after {until} (DIX.csv as published today), which are held out")
    if defaults and until < CALIBRATED_UNTIL and ref.dates[0] <= CALIBRATED_UNTIL and held.any():
        notes.append(f"the default parameters were fitted on sessions up to {CALIBRATED_UNTIL}: the sessions "
                     f"labelled held out after {until} up to {CALIBRATED_UNTIL} were seen by that fit; "
                     "cross_validation has out-of-sample figures for them")
    return notes


def _rho(a, b):
    if a.size < 2:
        return None
    r = spearman(a, b)
    return None if math.isnan(r) else r


def span_of(dates, mask) -> str | None:
    """'first..last' of the dates `mask` selects (None when none)."""
    sel = [d for d, m in zip(dates, mask) if m]
    return f"{sel[0]}..{sel[-1]}" if sel else None
