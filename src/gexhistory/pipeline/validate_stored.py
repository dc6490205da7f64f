"""`gexhistory validate --stored`: the GEX a database holds, scored against a published GEX series.

`validate` alone models the chain over the reference's own prices. With `--stored` it scores what was
stored instead: each session's close snapshot of the symbol (gex_history at the session's close time)
on the reference's dates, whatever computed it: a backfill's modelled chain, an imported chain file,
or Massive's real open interest (`import-oi`). The same metrics as validate's (engine/yearly.py),
pooled, per chain_source and per calendar year, and beside them the modelled chain's on the very same
sessions, so that real positioning and the price-path model are compared on equal terms. Rows of the
synthetic market are never scored against a real series: they are left out and counted.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from gexhistory.calendar import format_ts, sessions_between
from gexhistory.engine.validation import WARMUP_SESSIONS
from gexhistory.engine.yearly import metrics, years_of
from gexhistory.errors import BadInput
from gexhistory.pipeline.runs import ProgressFn
from gexhistory.pipeline.validate import modelled_close_gex, span_of
from gexhistory.sources.reference import Reference
from gexhistory.store import frames, queries
from gexhistory.words import first_of, plural

SYNTHETIC = "synthetic"


def validate_stored(ref: Reference, symbol: str = "SPX", db: str | None = None,
                    progress: ProgressFn | None = None) -> dict:
    """The stored close GEX of `symbol` against `ref` (module docstring); BadInput when the database holds
    no close snapshot of it on the reference's scored dates."""
    engine = frames.open_reader(db)
    try:
        frames.known_symbol(engine, symbol)
        found = queries.stored_closes(engine, symbol, ref.dates[0], ref.dates[-1])
    finally:
        engine.dispose()
    closes = {format_ts(s.close): s.date for s in sessions_between(ref.dates[0], ref.dates[-1])}
    row_of = {d: i for i, d in enumerate(ref.dates)}
    usable = ref.scored()
    picked: dict[dt.date, tuple[float, str]] = {}
    synthetic, unscored = set(), set()
    for ts, net, chain_source, data_source in found:
        day = closes.get(ts)
        if day is None or net is None:
            continue  # not a close snapshot
        if data_source == SYNTHETIC:
            synthetic.add(day)
        elif day not in row_of or not usable[row_of[day]]:
            unscored.add(day)
        else:
            picked[day] = (float(net), chain_source)
    if not picked:
        raise BadInput(f"no stored close snapshot of {symbol} from real data on the dates {ref.path} scores "
                       f"({ref.dates[0]}..{ref.dates[-1]}){_synthetic_hint(synthetic)}")
    days = sorted(picked)
    idx = np.array([row_of[d] for d in days])
    stored = np.array([picked[d][0] for d in days])
    label = np.array([picked[d][1] for d in days], dtype=object)
    gex = ref.gex[idx]
    modelled = modelled_close_gex("SPX", ref.dates, ref.close, progress=progress)[idx]
    years = years_of(days)
    return {
        "symbol": symbol,
        "reference": ref.path,
        "close_column": ref.close_column,
        "span": f"{days[0]}..{days[-1]}",
        "stored": metrics(stored, gex),
        "modelled_same_sessions": metrics(modelled, gex),
        "by_chain_source": [{"chain_source": c, "span": span_of(days, label == c), **metrics(stored[label == c],
                                                                                           gex[label == c])}
                            for c in sorted(set(label.tolist()))],
        "by_year": [{"year": y, "span": span_of(days, years == y), "stored": metrics(stored[years == y], gex[years == y]),
                     "modelled_same_sessions": metrics(modelled[years == y], gex[years == y])}
                    for y in np.unique(years).tolist()],
        "notes": _notes(synthetic, unscored),
    }


def _synthetic_hint(synthetic: set) -> str:
    return (f"; {plural(len(synthetic), 'session')} of the synthetic market, never scored against a real series"
            if synthetic else "")


def _notes(synthetic: set, unscored: set) -> list[str]:
    notes = []
    if synthetic:
        notes.append(f"{plural(len(synthetic), 'stored session')} of the synthetic market left out "
                     f"({first_of(sorted(synthetic), 3)})")
    if unscored:
        notes.append(f"{plural(len(unscored), 'stored session')} without a reference GEX value, or in the first "
                     f"{WARMUP_SESSIONS} sessions of the file (the modelled chain's warm-up), left out "
                     f"({first_of(sorted(unscored), 3)})")
    notes.append("modelled_same_sessions: the chain model over the reference's own closes (as `validate` "
                 "without --stored), scored on the same sessions; in sample where its parameters were fitted")
    return notes
