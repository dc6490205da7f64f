"""Statistics the pages show: Wilson intervals, streaks, expectancy, correlations. Pure, no I/O.

Inputs are counts or sums that the store aggregated in SQL, so a page never pulls raw history just to
compute one number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Proportion:
    """k successes out of n, with the Wilson score interval (None everywhere when n == 0)."""

    k: int
    n: int
    p: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict:
        return {"k": self.k, "n": self.n, "p": self.p, "ci_low": self.low, "ci_high": self.high}


def wilson(k: int, n: int, z: float = Z95) -> Proportion:
    """Wilson score interval for k of n; it stays inside [0, 1] and is sane for small n and p near 0/1."""
    if k < 0 or n < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Proportion(0, 0, None, None, None)
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # At k == 0 and k == n the bound is exactly 0 or 1; rounding must not move it inside.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return Proportion(k, n, p, low, high)


def current_streak(outcomes: list[bool]) -> tuple[str | None, int]:
    """('W'|'L', length) of the run at the end of `outcomes` (oldest first); (None, 0) when empty."""
    if not outcomes:
        return None, 0
    last = outcomes[-1]
    n = 0
    for o in reversed(outcomes):
        if o != last:
            break
        n += 1
    return ("W" if last else "L"), n


def longest_streaks(outcomes: list[bool]) -> tuple[int, int]:
    """(longest winning run, longest losing run)."""
    best = {True: 0, False: 0}
    run, prev = 0, None
    for o in outcomes:
        run = run + 1 if o == prev else 1
        prev = o
        best[o] = max(best[o], run)
    return best[True], best[False]


def expectancy(wins: int, losses: int, avg_win: float | None, avg_loss: float | None) -> float | None:
    """Expected return per signal: P(win) x avg win + P(loss) x avg loss (avg loss is usually negative)."""
    n = wins + losses
    if n == 0:
        return None
    total = 0.0
    if wins:
        if avg_win is None:
            return None
        total += wins * avg_win
    if losses:
        if avg_loss is None:
            return None
        total += losses * avg_loss
    return total / n


def pearson_from_sums(n: int, sx: float, sy: float, sxx: float, syy: float, sxy: float) -> float | None:
    """Pearson r from SQL aggregates; None when n < 3 or either side has no variance."""
    if n is None or n < 3:
        return None
    cov = sxy - sx * sy / n
    vx = sxx - sx * sx / n
    vy = syy - sy * sy / n
    # Relative tolerance: the sums of squares of $1e9 GEX values lose ~1e-16 of their size.
    if vx <= 1e-12 * max(abs(sxx), 1.0) or vy <= 1e-12 * max(abs(syy), 1.0):
        return None
    r = cov / math.sqrt(vx * vy)
    return max(-1.0, min(1.0, r))


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson r of paired values, skipping pairs with a None (mean-centred: no cancellation)."""
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
    n = len(pairs)
    if n < 3:
        return None
    mx = sum(p[0] for p in pairs) / n
    my = sum(p[1] for p in pairs) / n
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def ratio(k: int | None, n: int | None) -> float | None:
    return None if not n else (k or 0) / n
