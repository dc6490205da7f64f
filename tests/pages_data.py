"""A small database for the page and API tests: a real synthetic backfill plus hand-made signals.

The hand-made regime_signals rows have known outcomes, so win rates, expectancy, streaks and the
probability tables can be checked against values computed by hand below.
"""

from __future__ import annotations

import datetime as dt

from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from helpers import rows

START, END = dt.date(2024, 9, 3), dt.date(2025, 10, 31)  # 14 months: past 1Y, with regime changes at closes
SYMBOL = "SPY"

# (pattern, direction, 1d, 5d, 10d, signal_correct), oldest first.
HAND_SIGNALS = [
    ("TEST_BULL", "bullish", -0.4, -1.0, -2.0, 0),
    ("TEST_BEAR", "bearish", -0.3, -2.0, -2.5, 1),
    ("TEST_BULL", "bullish", 0.1, 0.5, None, 0),
    ("TEST_BULL", "bullish", -0.2, 1.5, 1.0, 1),
    ("TEST_BEAR", "bearish", 0.6, 1.0, 0.4, 0),
    ("TEST_BULL", "bullish", 0.5, 2.0, 3.0, 1),
    ("TEST_BEAR", "bearish", -1.1, -3.0, -4.0, 1),
    ("TEST_PIN", "neutral", 0.2, 0.5, -0.3, 1),
    ("TEST_PIN", "neutral", None, None, None, None),
]

# What the hand signals give, worked out by hand from the table above.
EXPECTED = {
    "TEST_BULL": {"signals": 4, "wins": 2, "losses": 2, "win_rate": 50.0, "avg_win": 1.75, "avg_loss": -0.25,
                  "expectancy": 0.75, "up_1d": (2, 4), "up_5d": (3, 4), "up_10d": (2, 3), "down_10d": (1, 3)},
    "TEST_BEAR": {"signals": 3, "wins": 2, "losses": 1, "win_rate": 200 / 3, "avg_win": 2.5, "avg_loss": -1.0,
                  "expectancy": 4 / 3, "up_1d": (1, 3), "up_5d": (1, 3), "up_10d": (1, 3), "down_10d": (2, 3)},
    "TEST_PIN": {"signals": 2, "wins": 1, "losses": 0, "win_rate": 100.0, "avg_win": None, "avg_loss": None,
                 "expectancy": None, "up_1d": (1, 1), "up_5d": (1, 1), "up_10d": (0, 1), "down_10d": (1, 1)},
}


def build(db: str) -> None:
    """Backfill SYMBOL over START..END (synthetic) and add the hand-made signals on its last sessions (their
    confidence recomputed as a backfill does: too few earlier outcomes of their patterns, so NULL)."""
    from gexhistory.pipeline.outcomes import refresh_confidence
    from gexhistory.store import writes
    from gexhistory.store.db import open_engine
    from gexhistory.store.schema import regime_signals

    run_backfill(BackfillOptions([SYMBOL], START, END, source="synthetic", db=db))
    dates = [d for (d,) in rows(db, "SELECT date FROM gamma_daily_summary WHERE symbol=:s ORDER BY date", s=SYMBOL)]
    use = dates[-len(HAND_SIGNALS):]
    out = []
    for d, (pattern, direction, m1, m5, m10, ok) in zip(use, HAND_SIGNALS):
        spot = rows(db, "SELECT spot_price FROM gamma_history WHERE symbol=:s AND date=:d ORDER BY timestamp DESC",
                    s=SYMBOL, d=d)[0][0]
        out.append({"symbol": SYMBOL, "timestamp": f"{d} 15:59:59", "primary_regime_type": pattern,
                    "trade_direction": direction, "spy_price": spot,
                    "price_change_1d": m1, "price_change_5d": m5, "price_change_10d": m10, "signal_correct": ok,
                    "description": f"hand-made {pattern}", "data_source": "test", "chain_source": "test"})
    engine = open_engine(db)
    with engine.begin() as conn:
        writes.insert_rows(conn, regime_signals, out)
        refresh_confidence(conn, SYMBOL)
    engine.dispose()
