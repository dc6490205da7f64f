"""Outcomes over trading sessions and the one signal_correct rule (SPEC §6), then the stored signals on
SQLite and PostgreSQL: idempotence, --force, outcomes filled by a later run, agreement on every row."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gexhistory.pipeline.backfill import BackfillOptions, run_backfill
from gexhistory.calendar import sessions_between
from gexhistory.engine.outcomes import outcome, signal_correct
from helpers import rows, table_digest


def test_outcome_on_a_constructed_path():
    days = [s.date for s in sessions_between(dt.date(2025, 6, 2), dt.date(2025, 6, 30))]
    later = days[1:]
    closes = {d: 100.0 + i for i, d in enumerate(later, start=1)}  # +1 a session
    o = outcome(100.0, later, closes, "BULLISH")
    assert o.price_change_1d == pytest.approx(1.0)
    assert o.price_change_5d == pytest.approx(5.0)
    assert o.price_change_10d == pytest.approx(10.0)
    assert o.signal_correct == 1
    # Only 7 later sessions stored: 10d unknown, 5d known.
    partial = {d: c for d, c in closes.items() if d <= later[6]}
    p = outcome(100.0, later, partial, "BEARISH")
    assert p.price_change_5d == pytest.approx(5.0) and p.price_change_10d is None and p.signal_correct == 0
    # The end of the data: nothing known yet.
    n = outcome(100.0, later, {}, "NEUTRAL")
    assert (n.price_change_1d, n.price_change_5d, n.price_change_10d, n.signal_correct) == (None, None, None, None)
    # Juneteenth (06-19) is not a session: the 1-session move from 06-18 is to 06-20.
    i = days.index(dt.date(2025, 6, 18))
    assert days[i + 1] == dt.date(2025, 6, 20)


@pytest.mark.parametrize("direction,move,expected", [
    ("BULLISH", 1.01, 1), ("BULLISH", 1.0, 0), ("BULLISH", -3.0, 0),
    ("BEARISH", -1.01, 1), ("BEARISH", -1.0, 0), ("BEARISH", 2.0, 0),
    ("NEUTRAL", 1.99, 1), ("NEUTRAL", -2.0, 0), ("VOLATILE", -1.5, 1), ("VOLATILE", 2.5, 0),
    ("BULLISH", None, None),
])
def test_signal_correct_rule(direction, move, expected):
    assert signal_correct(direction, move) == expected


@given(st.sampled_from(["BULLISH", "BEARISH", "NEUTRAL", "VOLATILE"]), st.floats(-20, 20))
def test_signal_correct_is_the_one_rule(direction, move):
    want = {"BULLISH": move > 1, "BEARISH": move < -1}.get(direction, abs(move) < 2)
    assert signal_correct(direction, move) == int(want)


def _backfill(db, start, end, **kw):
    return run_backfill(BackfillOptions(["SPY"], start, end, source="synthetic", db=db, **kw))


def _check_every_row(db):
    """price_change_Nd from the stored closes N sessions later, and signal_correct from the rule."""
    closes = {d: c for d, c in rows(db, "SELECT date, close_price FROM gamma_daily_summary WHERE symbol='SPY'")}
    cal = [s.date.isoformat() for s in sessions_between(dt.date(2025, 1, 2), dt.date(2025, 12, 31))]
    sigs = rows(db, "SELECT timestamp, spy_price, trade_direction, price_change_1d, price_change_5d, "
                    "price_change_10d, signal_correct FROM regime_signals WHERE symbol='SPY'")
    assert sigs
    for ts, spot, direction, c1, c5, c10, ok in sigs:
        day = ts[:10]
        assert spot == pytest.approx(closes[day])
        i = cal.index(day)
        for h, got in ((1, c1), (5, c5), (10, c10)):
            later = closes.get(cal[i + h])
            if later is None:
                assert got is None
            else:
                assert got == pytest.approx((later / spot - 1) * 100)
        assert ok == signal_correct(direction, c5)


def test_signals_stored_idempotent_and_outcomes_filled_later(db_url):
    first = _backfill(db_url, dt.date(2025, 3, 3), dt.date(2025, 4, 30))
    n_sessions = len(sessions_between(dt.date(2025, 3, 3), dt.date(2025, 4, 30)))
    n, distinct, types = rows(db_url, "SELECT COUNT(*), COUNT(DISTINCT timestamp), "
                                      "COUNT(DISTINCT primary_regime_type) FROM regime_signals")[0]
    assert 0 < n == distinct <= n_sessions and types >= 2
    assert first.totals()["regime_signals"].inserted == n
    assert rows(db_url, "SELECT COUNT(*) FROM regime_signals WHERE data_source <> 'synthetic' "
                        "OR chain_source <> 'modelled' OR symbol <> 'SPY'")[0][0] == 0
    # Signals sit at the close snapshot; texts carry the numbers.
    assert {t[11:] for (t,) in rows(db_url, "SELECT timestamp FROM regime_signals")} <= {"16:00:00", "13:00:00"}
    assert len({d for (d,) in rows(db_url, "SELECT description FROM regime_signals")}) == n
    # The last sessions' outcomes are unknown, the early ones known.
    last = sessions_between(dt.date(2025, 4, 1), dt.date(2025, 4, 30))[-1].date.isoformat()
    pend = rows(db_url, "SELECT COUNT(*) FROM regime_signals WHERE price_change_10d IS NULL")[0][0]
    assert pend >= 1 and first.outcomes_pending == pend
    tail = rows(db_url, "SELECT price_change_1d, signal_correct FROM regime_signals WHERE timestamp >= :d", d=last)
    assert all(r == (None, None) for r in tail)
    _check_every_row(db_url)

    before = table_digest(db_url, "regime_signals", "SPY")
    again = _backfill(db_url, dt.date(2025, 3, 3), dt.date(2025, 4, 30))
    assert again.totals()["regime_signals"].inserted == 0 and again.outcomes_filled == 0
    forced = _backfill(db_url, dt.date(2025, 3, 3), dt.date(2025, 4, 30), force=True)
    assert forced.totals()["regime_signals"].replaced == n and forced.totals()["regime_signals"].inserted == 0
    assert table_digest(db_url, "regime_signals", "SPY") == before

    # A later run extends the data: the pending outcomes become known and are counted.
    later = _backfill(db_url, dt.date(2025, 5, 1), dt.date(2025, 5, 30))
    assert later.outcomes_filled >= pend
    assert rows(db_url, "SELECT COUNT(*) FROM regime_signals WHERE timestamp <= :d AND price_change_10d IS NULL",
                d=f"{last} 23:59:59")[0][0] == 0
    assert later.as_dict()["outcomes_filled"] == later.outcomes_filled
    _check_every_row(db_url)


def test_signals_do_not_depend_on_the_window(db_url):
    """A session's signal is the same whether a short or a long run computed it."""
    _backfill(db_url, dt.date(2025, 4, 1), dt.date(2025, 4, 15))
    short = [r for r in table_digest(db_url, "regime_signals", "SPY")]
    _backfill(db_url, dt.date(2025, 3, 3), dt.date(2025, 4, 30), force=True)
    from gexhistory.store.schema import regime_signals

    names = [c.name for c in regime_signals.columns if c.name not in ("id", "run_id", "created_at")]
    # Outcomes differ (the long run knows more later closes), and so does the confidence: the hit rate of
    # the earlier signals stored, which the long run has more of (test_confidence.py).
    outcome_cols = {names.index(c) for c in ("price_change_1d", "price_change_5d", "price_change_10d",
                                             "signal_correct", "confidence_score")}
    long_ = [r for r in table_digest(db_url, "regime_signals", "SPY") if "2025-04-01" <= r[1][:10] <= "2025-04-15"]

    def strip(rs):
        return [tuple(v for i, v in enumerate(r) if i not in outcome_cols) for r in rs]

    assert len(short) == len(long_) > 0
    assert strip(short) == strip(long_)
