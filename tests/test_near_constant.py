"""/gamma's correlation table leaves out a ratio that does not move (web/views.py NEAR_CONSTANT_CV).

The calibrated chain model's put/call ratio moves with volatility, so a backfill no longer yields a
near-constant one by itself; here the stored ratio is set by hand to one that barely moves.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import text

from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from gexhistory.web.app import create_app
from helpers import engine_for, rows


def test_a_near_constant_ratio_is_not_correlated(db_url):
    """A put/call ratio of 0.810-0.812 (sd under 1% of its mean) is not correlated: r is None and
    `omitted` gives its sd, recomputed here; every other pair still is."""
    run_backfill(BackfillOptions(["SPY"], dt.date(2025, 3, 3), dt.date(2025, 6, 30), source="synthetic", db=db_url))
    eng = engine_for(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE gamma_history SET put_call_ratio = 0.81 + 0.001 * (id % 3)"))
    eng.dispose()
    app = create_app(db_url)
    with TestClient(app) as client:
        r = client.get("/api/gamma/SPY/summary?days=all")
    app.state.db.dispose()
    assert r.status_code == 200, r.text[:300]
    pcr = np.array([x[0] for x in rows(db_url, "SELECT put_call_ratio FROM gamma_history WHERE symbol='SPY'")])
    assert 0 < pcr.std() / pcr.mean() < 0.01
    by_pair = {c["pair"]: c for c in r.json()["data"]["correlations"]}
    assert by_pair["pcr-iv"]["levels"] is None and by_pair["pcr-iv"]["changes"] is None
    assert by_pair["pcr-iv"]["omitted"] == (f"put/call ratio nearly constant (sd {pcr.std() / pcr.mean() * 100:.2f}% "
                                            "of its mean)")
    assert all(c["omitted"] is None and c["levels"] is not None for p, c in by_pair.items() if p != "pcr-iv")
