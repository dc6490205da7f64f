"""confidence_score is the pattern's hit rate from the outcomes known at the signal's close.

By hand on constructed histories (engine/confidence.py), and on backfilled databases (SQLite and
PostgreSQL) against a brute-force recount from direct SQL; no look-ahead: extending the history later
never changes a stored signal's confidence.
"""

from __future__ import annotations

import datetime as dt

import pytest

from gexhistory.calendar import sessions_between
from gexhistory.engine.confidence import MIN_KNOWN, SignalFact, historical_confidence
from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from helpers import rows


def _f(session, correct, pattern="P", direction="BULLISH", source="synthetic"):
    return SignalFact(session, pattern, direction, source, correct)


def test_only_outcomes_due_by_the_close_count():
    # Signals of one pattern on sessions 0..4 (W, L, W, unknown, W), then probes on later sessions.
    hist = [_f(0, 1), _f(1, 0), _f(2, 1), _f(3, None), _f(4, 1)]
    probes = [_f(5, None), _f(6, None), _f(7, None), _f(9, None), _f(30, None)]
    got = historical_confidence(hist + probes, min_known=1)
    # Session 5: only session 0's 5-session outcome is due (0 + 5 <= 5): 1 of 1.
    assert (got[5].wins, got[5].known) == (1, 1) and got[5].score == 100.0
    # Session 6: sessions 0 and 1 -> 1 of 2. Session 7: + session 2 -> 2 of 3.
    assert (got[6].wins, got[6].known, got[6].score) == (1, 2, 50.0)
    assert (got[7].wins, got[7].known) == (2, 3)
    # Session 9: session 3's outcome is unknown (not counted), session 4's is due: 3 of 4. The probes of
    # sessions 5-7 carry no outcome either, so nothing changes by session 30 except them being due.
    assert (got[8].wins, got[8].known) == (3, 4)
    assert (got[9].wins, got[9].known) == (3, 4)
    # No signal sees its own outcome or a later one.
    assert [(c.wins, c.known) for c in got[:5]] == [(0, 0), (0, 0), (0, 0), (0, 0), (0, 0)]


def test_groups_and_the_minimum_sample():
    wins = [_f(i, i % 4 != 0) for i in range(MIN_KNOWN)]  # sessions 0..9: 7 wins, 3 losses
    other = [_f(i, 0, pattern="Q") for i in range(20)]  # another pattern's losses count for nothing here
    bear = [_f(i, 0, direction="BEARISH") for i in range(20)]  # same pattern, other direction
    real = [_f(i, 0, source="polygon") for i in range(20)]  # same pattern, real prices
    early = _f(MIN_KNOWN + 3, None)  # sessions 0..8 due: 9 known < MIN_KNOWN
    ready = _f(MIN_KNOWN + 4, None)  # sessions 0..9 due: 10 known
    got = historical_confidence(wins + other + bear + real + [early, ready])
    assert got[-2].score is None and (got[-2].wins, got[-2].known) == (6, 9)
    assert got[-1].score == pytest.approx(70.0) and (got[-1].wins, got[-1].known) == (7, 10)


def test_order_of_the_input_does_not_matter():
    facts = [_f(i, i % 3 == 0) for i in range(40)]
    fwd = historical_confidence(facts)
    rev = historical_confidence(facts[::-1])[::-1]
    assert fwd == rev and fwd[-1].score is not None


def _recount(db: str) -> dict[int, float | None]:
    """Brute force from direct SQL: per signal, every earlier signal of the same pattern, direction and
    source whose 5th NYSE session after it is the signal's session or earlier, with a known outcome."""
    sigs = rows(db, "SELECT id, timestamp, primary_regime_type, trade_direction, data_source, signal_correct "
                    "FROM regime_signals WHERE symbol='SPY'")
    first = min(dt.date.fromisoformat(s[1][:10]) for s in sigs)
    cal = [s.date.isoformat() for s in sessions_between(first, dt.date(2030, 1, 1))]
    out = {}
    for sid, ts, pat, d, src, _ in sigs:
        i = cal.index(ts[:10])
        known = [ok for _, ts2, pat2, d2, src2, ok in sigs
                 if (pat2, d2, src2) == (pat, d, src) and ok is not None and cal.index(ts2[:10]) + 5 <= i]
        out[sid] = 100.0 * sum(known) / len(known) if len(known) >= MIN_KNOWN else None
    return out


def _stored(db: str) -> dict[int, float | None]:
    return dict(rows(db, "SELECT id, confidence_score FROM regime_signals WHERE symbol='SPY'"))


def test_backfill_stores_the_hit_rate_and_extending_changes_no_past_value(db_url):
    run_backfill(BackfillOptions(["SPY"], dt.date(2024, 9, 3), dt.date(2025, 6, 30), source="synthetic", db=db_url))
    first = _stored(db_url)
    want = _recount(db_url)
    assert first == pytest.approx(want)
    shown = [v for v in first.values() if v is not None]
    assert len(shown) >= 10 and len(shown) < len(first)  # early signals of each pattern: too few outcomes
    # Later sessions make the pending outcomes known: no stored confidence may change (no look-ahead),
    # and the new signals get theirs from the same rule.
    run_backfill(BackfillOptions(["SPY"], dt.date(2025, 7, 1), dt.date(2025, 9, 30), source="synthetic", db=db_url))
    after = _stored(db_url)
    assert {k: after[k] for k in first} == pytest.approx(first)
    assert after == pytest.approx(_recount(db_url)) and len(after) > len(first)
