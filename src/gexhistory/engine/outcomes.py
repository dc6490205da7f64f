"""Signal outcomes (docs/computation.md#outcomes): price change over 1, 5 and 10 trading sessions, and
whether it was right.

The base is the signal session's close (the close snapshot's spot, stored as spy_price and as the
session's gamma_daily_summary close_price); the horizon price is the close of the k-th NYSE session
after it, from the same table and the same data_source. A horizon whose session is not stored yet is
NULL, and so is signal_correct until the 5-session move is known.

One rule on the 5-session move: BULLISH is right when > +1%, BEARISH when < -1%, and
NEUTRAL / VOLATILE (pins and regime changes) when |move| < 2%.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

HORIZONS = (1, 5, 10)
BULL_MOVE, BEAR_MOVE, FLAT_MOVE = 1.0, -1.0, 2.0


def signal_correct(trade_direction: str | None, change_5d: float | None) -> int | None:
    if change_5d is None or trade_direction is None:
        return None
    d = trade_direction.upper()
    if d == "BULLISH":
        return int(change_5d > BULL_MOVE)
    if d == "BEARISH":
        return int(change_5d < BEAR_MOVE)
    return int(abs(change_5d) < FLAT_MOVE)


@dataclass
class Outcome:
    price_change_1d: float | None
    price_change_5d: float | None
    price_change_10d: float | None
    signal_correct: int | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def outcome(base: float, later_sessions: list[dt.date], closes: dict[dt.date, float],
            trade_direction: str | None) -> Outcome:
    """`later_sessions`: the NYSE sessions after the signal's, in order (at least max(HORIZONS) of
    them when the calendar has them); `closes`: the stored closes by date."""
    changes = []
    for h in HORIZONS:
        c = closes.get(later_sessions[h - 1]) if len(later_sessions) >= h else None
        changes.append(None if c is None or not base else (c / base - 1.0) * 100.0)
    return Outcome(*changes, signal_correct(trade_direction, changes[1]))


def outcomes_for(signals: list[dict], closes: dict[str, dict[dt.date, float]],
                 cal: list[dt.date]) -> list[Outcome]:
    """The outcome each signal should hold given the stored closes.

    `signals`: dicts with 'timestamp' ('YYYY-MM-DD ...'), 'spy_price', 'trade_direction' and
    'data_source'; `closes`: per data_source, the stored session closes by date; `cal`: the NYSE
    sessions in order from the first signal's to at least max(HORIZONS) past the last one's. The
    horizons count sessions, not stored rows, so a missing session leaves its horizon NULL rather
    than taking the next stored one.
    """
    days = [dt.date.fromisoformat(s["timestamp"][:10]) for s in signals]
    pos = {d: i for i, d in enumerate(cal)}
    out = []
    for s, day in zip(signals, days):
        i = pos.get(day)
        later = cal[i + 1:i + 1 + max(HORIZONS)] if i is not None else []
        out.append(outcome(s["spy_price"], later, closes.get(s["data_source"], {}), s["trade_direction"]))
    return out


def differing(stored: dict, expected: Outcome, known_only: bool = False) -> list[str]:
    """The outcome columns of a stored row that do not hold `expected` (floats to 1e-9 relative: a
    database may round the last bit of a double it was given). `known_only`: judge only the columns
    whose expected value is known."""
    out = []
    for key, want in expected.as_dict().items():
        have = stored[key]
        if want is None:
            if have is not None and not known_only:
                out.append(key)
        elif have is None or abs(float(have) - float(want)) > 1e-9 * max(1.0, abs(float(want))):
            out.append(key)
    return out
