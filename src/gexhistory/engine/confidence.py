"""What `regime_signals.confidence_score` means: the pattern's historical hit rate, as it was known at
the signal's close.

For a signal on session i: the earlier signals of the same pattern, trade direction and data source
whose outcome (the 5-session move, engine/outcomes.py) was already known at i's close, i.e. whose 5th
session after them is i or an earlier one; confidence = 100 x wins / known. With fewer than
MIN_KNOWN such outcomes it is None: a rate of 3 out of 4 is not a confidence.

No look-ahead: only outcomes that had happened by the signal's close count, and nothing else of the
signal (its own outcome, later signals) enters it. The number replaces the original design's fixed per-pattern
values (95, 90, 75 ...), which were not probabilities: over ten modelled SPY years they averaged 78
against a realised win rate of 45% (chain model of before the 2011-2022 calibration). Whether this one is calibrated is shown, not assumed: the
psychology page tabulates confidence buckets against the realised win rate.

Pure Python (no numpy): the backfill's no-op rerun refreshes it without loading the engine's
numerical modules.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

from gexhistory.engine.outcomes import HORIZONS

MIN_KNOWN = 10  # earlier outcomes a rate needs before it is shown
DECIDING_HORIZON = HORIZONS[1]  # signal_correct is decided on the 5-session move


@dataclass(frozen=True)
class SignalFact:
    """What the confidence of a signal depends on. `session`: the position of its session in the
    exchange calendar (consecutive sessions differ by 1); `correct`: signal_correct (None: unknown)."""

    session: int
    pattern: str
    direction: str | None
    data_source: str
    correct: int | None


@dataclass(frozen=True)
class Confidence:
    score: float | None  # 100 x wins / known, None below MIN_KNOWN
    wins: int
    known: int


def historical_confidence(facts: list[SignalFact], min_known: int = MIN_KNOWN) -> list[Confidence]:
    """The confidence of every signal, in the order given. Linear: each signal enters its group's
    tally once, when the first later signal's session reaches its outcome's session."""
    order = sorted(range(len(facts)), key=lambda i: facts[i].session)
    waiting: dict[tuple, deque] = defaultdict(deque)  # per group: earlier signals, outcome not yet due
    tally: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])  # per group: [wins, known]
    out: list[Confidence | None] = [None] * len(facts)
    for i in order:
        f = facts[i]
        key = (f.pattern, f.direction, f.data_source)
        queue, t = waiting[key], tally[key]
        while queue and queue[0].session + DECIDING_HORIZON <= f.session:
            done = queue.popleft()
            if done.correct is not None:
                t[0] += int(done.correct)
                t[1] += 1
        wins, known = t
        out[i] = Confidence(round(100.0 * wins / known, 6) if known >= min_known else None, wins, known)
        queue.append(f)
    return out
