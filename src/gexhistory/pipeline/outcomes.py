"""Signal outcomes: filled from the stored session closes once their horizons have passed.

A signal's price_change_1d/5d/10d and signal_correct are NULL until the sessions they need are
stored; every run (a `--days 7` refresh included) fills those that became known since.
"""

from __future__ import annotations

import datetime as dt

from gexhistory.calendar import sessions_between
from gexhistory.engine.outcomes import HORIZONS, outcome
from gexhistory.store import outcomes as store_outcomes


def fill_outcomes(engine, symbol: str) -> tuple[int, int]:
    """Fill the outcomes of `symbol`'s stored signals whose horizons are now known, from the stored
    session closes of the same data_source (engine/outcomes.py). Returns (signals updated, still pending)."""
    pending = store_outcomes.pending_signals(engine, symbol)
    if not pending:
        return 0, 0
    first = min(dt.date.fromisoformat(r["timestamp"][:10]) for r in pending)
    closes: dict[str, dict[dt.date, float]] = {}
    updates, still = [], 0
    cal = [x.date for x in sessions_between(first, dt.date.today() + dt.timedelta(days=40))]
    pos = {d: i for i, d in enumerate(cal)}
    for r in pending:
        day = dt.date.fromisoformat(r["timestamp"][:10])
        src = r["data_source"]
        if src not in closes:
            closes[src] = store_outcomes.session_closes(engine, symbol, src, first)
        i = pos.get(day)
        later = cal[i + 1:i + 1 + max(HORIZONS)] if i is not None else []
        o = outcome(r["spy_price"], later, closes[src], r["trade_direction"]).as_dict()
        if o["price_change_10d"] is None:
            still += 1
        if any(o[k] != r[k] for k in o):
            updates.append({"id": r["id"], **o})
    store_outcomes.update_outcomes(engine, updates)
    return len(updates), still
