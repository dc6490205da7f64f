"""Flip point search: the zero crossing of the net GEX profile nearest spot, for many snapshots at once.

The profile at a hypothetical spot S is S * sum(sign*OI * gamma(S)). With gamma = e^{-qT} n(d1) / (S vol sqrt T)
the S cancels, and each position contributes coef * exp(-d^2 / 2) with d = d1 + slope * x, x = log(S / spot):
one exp per position and point, no log, no division. Snapshots lie end to end in flat arrays of
(position, snapshot) pairs and every sum runs over one snapshot's own pairs (engine/segments.py), so a
snapshot's flip does not depend on the snapshots solved with it.

The answer is defined by a scan of the whole +-flip_search grid (FLIP_GRID_POINTS points) for the bracketed
crossing nearest spot, then refined to the root. The scan here goes from spot outwards and stops at the first
ring of brackets that crosses: a crossing in ring r is nearer spot than any further out, so the far points
cannot change the answer. A grid value of exactly zero could (the rule for exact zeros looks at the whole
grid): a snapshot where one might occur (no position whose term stays a normal float over the whole grid) or
does occur takes the plain full-grid path. Refinement is Newton's method in x, kept inside the bracket (a
step that would leave it bisects instead): the profile's derivative costs three multiplies on the same
exponentials, and Newton converges in two or three evaluations where regula falsi needed seven.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gexhistory.engine.greeks import bs_gamma, gaussian
from gexhistory.engine.segments import expand, lengths_to_starts, seg_sum

FLIP_GRID_POINTS = 25  # 1.67% spacing at +-20%; each bracketed crossing is then refined
# Newton stops once a step is below NEWTON_STEP_TOL (log-spot) and below a tenth of the step before: the
# ratio shows quadratic convergence (step_k ~ C step_{k-1}^2), so the error left after the last step,
# ~ C step^2 = step^3 / step_{k-1}^2, is below a hundredth of NEWTON_STEP_TOL.
NEWTON_STEP_TOL = 1e-6
BRACKET_TOL = 1e-13  # a bracket this narrow (in log-spot) is the root
MAX_ITER = 100
_NORMAL_D = 37.0  # exp(-37^2/2) ~ 1e-297: a term with |d| below this is a normal, nonzero float


class Profiles:
    """The net GEX profiles of several snapshots: per (position, snapshot) pair, d at spot, its slope in
    x = log(S / spot), and the coefficient; `start` gives each snapshot's run of pairs."""

    def __init__(self, start: np.ndarray, d1: np.ndarray, slope: np.ndarray, coef: np.ndarray):
        self.start, self.d1, self.slope, self.coef = start, d1, slope, coef

    def rows(self, rows: np.ndarray) -> "Profiles":
        idx, owner = expand(self.start, rows)
        return Profiles(lengths_to_starts(np.bincount(owner, minlength=rows.size)), np.take(self.d1, idx),
                        np.take(self.slope, idx), np.take(self.coef, idx))

    def at_points(self, x: np.ndarray) -> np.ndarray:
        """(snapshots, points): every snapshot's profile at each x (shared by all snapshots)."""
        d = x[:, None] * self.slope[None, :]
        d += self.d1[None, :]
        terms = gaussian(d, out=d)
        terms *= self.coef[None, :]
        return seg_sum(terms, self.start).T

    def at(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each snapshot's profile and its derivative in x at its own x."""
        d = self.slope * np.repeat(x, np.diff(self.start))
        d += self.d1
        terms = np.multiply(d, d)
        terms *= -0.5
        np.exp(terms, out=terms)
        terms *= self.coef
        f = seg_sum(terms, self.start)
        terms *= d
        terms *= self.slope
        return f, -seg_sum(terms, self.start)

    def single(self) -> "SingleProfiles":
        return SingleProfiles.of(self)


class SingleProfiles:
    """The same profiles in float32, for the grid scan, which needs only the sign of each grid value.

    float32 exp runs several times faster than float64 in numpy. Each snapshot carries a rigorous bound
    on how far its float32 value can be from the float64 one; a grid value within that bound of zero is
    recomputed in float64, so the scan's signs are exactly those of a float64 scan.

    -d^2/2 = (x - u)^2 * (-slope^2 / 2), u = -d1 / slope the position's centre in log-spot (no cancellation
    between large d1 and slope * x). With every input rounded once to float32 and each operation adding
    one rounding (2^-24 relative), x - u is off by at most 2^-24 * 2(|u| + |x|), so -d^2/2 by at most
    |d| slope 2^-24 * 2(|u| + |x|) + 1.5 d^2 2^-24; through exp (maxima of |d| e^{-d^2/2} and d^2 e^{-d^2/2}
    are 0.61 and 0.74) and the product with the coefficient, a term's error is at most
    |coef| 2^-24 (1.22 slope (|u| + |x|) + 7.3) (slope |u| = |d1|), plus 2^-126 |coef| where exp underflows.
    The float32 sum of n terms adds at most (n - 1) 2^-24 sum|coef|.
    """

    X_MAX = 0.25  # |log(S / spot)| over the widest grid (+-20%) is 0.223

    def __init__(self, start, u, half_sq, coef, bound):
        self.start, self.u, self.half_sq, self.coef, self.bound = start, u, half_sq, coef, bound

    @classmethod
    def of(cls, p: Profiles) -> "SingleProfiles":
        with np.errstate(all="ignore"):
            mag = np.abs(p.coef)
            # slope * |u| = |d1|
            err = mag * (1.22 * (np.abs(p.d1) + cls.X_MAX * p.slope) + 7.3 + 2.0 ** -102)
            u = (-p.d1 / p.slope).astype(np.float32)
            half_sq = (-0.5 * p.slope * p.slope).astype(np.float32)
        n = np.diff(p.start)
        bound = (seg_sum(err, p.start) + np.maximum(n - 1, 0) * seg_sum(mag, p.start)) * 2.0 ** -24 * 1.01
        return cls(p.start, np.nan_to_num(u), half_sq, p.coef.astype(np.float32), bound)

    def rows(self, rows: np.ndarray) -> "SingleProfiles":
        idx, owner = expand(self.start, rows)
        return SingleProfiles(lengths_to_starts(np.bincount(owner, minlength=rows.size)), np.take(self.u, idx),
                              np.take(self.half_sq, idx), np.take(self.coef, idx), self.bound[rows])

    def at_points(self, x: np.ndarray) -> np.ndarray:
        """(snapshots, points), as Profiles.at_points, within `bound` of it: exp(-slope^2 (x - u)^2 / 2)."""
        y = x.astype(np.float32)[:, None] - self.u[None, :]
        np.multiply(y, y, out=y)
        y *= self.half_sq[None, :]
        np.exp(y, out=y)
        y *= self.coef[None, :]
        return seg_sum(y, self.start).T


def solve_flips(profiles: Profiles, spots: np.ndarray, flip_search: float, textbook,
                at_spot: np.ndarray | None = None) -> np.ndarray:
    """Flip point of each snapshot (NaN where the profile does not cross zero within +-flip_search).
    `textbook(j)` gives snapshot j's profile as a callable of spot levels, for the full-grid path;
    `at_spot`, the profiles' values at spot when the caller has them."""
    spots = np.asarray(spots, dtype=float)
    n = spots.size
    out = np.full(n, np.nan)
    if n == 0:
        return out
    rel = np.linspace(1 - flip_search, 1 + flip_search, FLIP_GRID_POINTS)
    x = np.log(rel)
    grid = spots[:, None] * rel[None, :]
    p = profiles
    with np.errstate(over="ignore", invalid="ignore"):
        # |d| <= |d1| + slope * max|x| over the grid: an upper bound, so 'anchored' errs towards the
        # full-grid path, never away from it.
        reach = np.abs(p.d1) + p.slope * float(np.abs(x).max())
        good = (p.coef != 0) & (reach < _NORMAL_D)
        finite = np.isfinite(seg_sum(p.coef, p.start) + seg_sum(p.d1, p.start) + seg_sum(p.slope, p.start))
    # A non-finite term makes its sums non-finite (so does an overflowing sum: the full-grid path then).
    anchored = (seg_sum(good.astype(float), p.start) > 0) & finite

    single = p.single()
    vals = np.full((n, FLIP_GRID_POINTS), np.nan)
    if at_spot is not None and rel[FLIP_GRID_POINTS // 2] == 1.0:
        vals[:, FLIP_GRID_POINTS // 2] = at_spot
    bracket = np.full(n, -1)
    fallback = ~anchored
    todo = np.flatnonzero(anchored)
    for ring in _rings_for(float(flip_search)):
        if todo.size == 0:
            break
        need = np.unique(np.concatenate([ring, ring + 1]))
        need = need[np.isnan(vals[todo, need[:, None]]).any(axis=1)]
        if need.size:
            vals[np.ix_(todo, need)] = _scan_values(p, single, todo, x[need], n)
        v = vals[todo]
        zero = (v == 0).any(axis=1)
        fallback[todo[zero]] = True
        lo, hi = v[:, ring], v[:, ring + 1]
        cross = (np.signbit(lo) != np.signbit(hi)) & (lo != 0) & (hi != 0) & ~zero[:, None]
        mid = (grid[todo][:, ring] + grid[todo][:, ring + 1]) / 2
        dist = np.where(cross, np.abs(mid - spots[todo, None]), np.inf)
        found = cross.any(axis=1)
        bracket[todo[found]] = ring[np.argmin(dist[found], axis=1)]
        todo = todo[~found & ~zero]

    hit = np.flatnonzero((bracket >= 0) & ~fallback)
    if hit.size:
        i = bracket[hit]
        third = np.where(i < FLIP_GRID_POINTS // 2, i + 2, i - 1)  # the bracket's evaluated inner neighbour
        start = _first_guess(x[i], x[i + 1], x[third], vals[hit, i], vals[hit, i + 1], vals[hit, third])
        roots = _newton(p if hit.size == n else p.rows(hit), x[i], x[i + 1], vals[hit, i], vals[hit, i + 1], start)
        out[hit] = spots[hit] * np.exp(roots)
    for j in np.flatnonzero(fallback):
        profile = textbook(j)
        flip = _nearest_crossing(profile, grid[j], profile(grid[j]), spots[j])
        out[j] = np.nan if flip is None else flip
    return out


def _scan_values(p: Profiles, single: SingleProfiles, rows: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    """Rows' profiles at the grid points x: float32, then float64 where the sign is not certain."""
    everyone = rows.size == n
    sub = single if everyone else single.rows(rows)
    vals = sub.at_points(x)
    doubt = np.flatnonzero((np.abs(vals) <= sub.bound[:, None]).any(axis=1))
    if doubt.size:
        vals[doubt] = p.rows(rows[doubt]).at_points(x)
    return vals


class TextbookProfile:
    """S * sum(w * gamma(S)) with greeks.bs_gamma, the definition in the textbook's order of operations:
    the full-grid path exists for profiles whose terms underflow to exact zeros, and where a term
    underflows depends on the order of the operations, so they follow the definition."""

    def __init__(self, k, t, iv, w, r, q):
        self.k, self.t, self.iv, self.w, self.r, self.q = k, t, iv, w, r, q

    def __call__(self, s) -> np.ndarray:
        s = np.atleast_1d(np.asarray(s, dtype=float))[:, None]
        with np.errstate(all="ignore"):
            gamma = bs_gamma(s, self.k, self.t, self.iv, self.r, self.q)
        return (gamma * self.w).sum(axis=1) * s[:, 0]


def _first_guess(xa, xb, xc, fa, fb, fc) -> np.ndarray:
    """Inverse quadratic interpolation through the bracket's ends and its evaluated neighbour (the
    profile's curvature is what makes regula falsi land far from the root); regula falsi where that
    falls outside the bracket."""
    with np.errstate(all="ignore"):
        iqi = (xa * fb * fc / ((fa - fb) * (fa - fc)) + xb * fa * fc / ((fb - fa) * (fb - fc))
               + xc * fa * fb / ((fc - fa) * (fc - fb)))
    falsi = xa - fa * (xb - xa) / (fb - fa)
    inside = np.isfinite(iqi) & (iqi > np.minimum(xa, xb)) & (iqi < np.maximum(xa, xb))
    return np.where(inside, iqi, falsi)


def _newton(p: Profiles, xa, xb, fa, fb, start) -> np.ndarray:
    """The root in [xa, xb] of each snapshot's profile (fa, fb of opposite signs), every row at once,
    from `start`. A Newton step that would leave the bracket, or that is not at most half the step
    before it (on a Gaussian tail Newton crawls), is replaced by bisection, so every row converges at
    least as fast as bisection. A row's iterates are its own: rows that have converged stop moving, and
    leave the packed set once a quarter of it has (re-packing costs a gather of every pair)."""
    xa, xb, fa, fb = (np.array(v, dtype=float) for v in (xa, xb, fa, fb))
    root = np.array(start, dtype=float)
    xc = root.copy()
    last = np.abs(xb - xa)  # the previous step's size; the bracket's at first
    finished = np.zeros(xa.size, dtype=bool)
    act = np.arange(xa.size)
    for _ in range(MAX_ITER):
        f, fp = p.at(xc[act])
        c = xc[act]
        run = ~finished[act]
        exact = (f == 0) & run
        move = run & ~exact
        left = np.signbit(f) == np.signbit(fa[act])
        xa[act] = np.where(move & left, c, xa[act])
        fa[act] = np.where(move & left, f, fa[act])
        xb[act] = np.where(move & ~left, c, xb[act])
        fb[act] = np.where(move & ~left, f, fb[act])
        with np.errstate(divide="ignore", invalid="ignore"):
            nxt = c - f / fp
        lo, hi = np.minimum(xa[act], xb[act]), np.maximum(xa[act], xb[act])
        step = np.abs(nxt - c)
        newton = np.isfinite(nxt) & (nxt > lo) & (nxt < hi) & (step <= 0.5 * last[act])
        quadratic = newton & (step < NEWTON_STEP_TOL) & (step < 0.1 * last[act])
        nxt = np.where(newton, nxt, 0.5 * (lo + hi))
        last[act] = np.where(move, np.abs(nxt - c), last[act])
        root[act] = np.where(exact, c, np.where(move, nxt, root[act]))
        xc[act] = np.where(move, nxt, c)
        finished[act] |= exact | (move & (quadratic | (hi - lo < BRACKET_TOL)))
        running = ~finished[act]
        if not running.any():
            break
        if (~running).sum() * 4 >= running.size:
            act, p = act[running], p.rows(np.flatnonzero(running))
    return root


@lru_cache(maxsize=16)
def _rings_for(flip_search: float) -> tuple:
    return tuple(_rings(np.linspace(1 - flip_search, 1 + flip_search, FLIP_GRID_POINTS)))


def _rings(rel):
    """Bracket indices grouped by distance of their midpoint from spot, nearest first."""
    mid = np.abs((rel[:-1] + rel[1:]) / 2 - 1.0)
    step = (rel[-1] - rel[0]) / (rel.size - 1)
    rank = np.round(mid / step * 2).astype(int)
    return [np.flatnonzero(rank == r) for r in np.unique(rank)]


def _nearest_crossing(profile, grid, vals, spot) -> float | None:
    """The whole grid's rule: the crossing nearest spot, unless an exact grid zero is nearer than the
    lowest crossing's midpoint (then that zero)."""
    exact = np.flatnonzero((vals == 0) & _sign_changes_across(vals))
    cross = np.flatnonzero((np.signbit(vals[:-1]) != np.signbit(vals[1:])) & (vals[:-1] != 0) & (vals[1:] != 0))
    best = None
    if exact.size:
        i = exact[np.argmin(np.abs(grid[exact] - spot))]
        best = (abs(grid[i] - spot), float(grid[i]), None)
    if cross.size:
        mid = (grid[cross] + grid[cross + 1]) / 2
        i = cross[np.argmin(np.abs(mid - spot))]
        if best is None or abs(mid.min() - spot) < best[0]:
            best = (0.0, None, i)
    if best is None:
        return None
    if best[2] is None:
        return best[1]
    i = best[2]
    return _bisect(profile, grid[i], grid[i + 1], vals[i], spot)


def _sign_changes_across(vals: np.ndarray) -> np.ndarray:
    """Per grid point: the nearest non-zero values on its left and right have opposite signs. A zero
    of the profile is a flip only then: one that underflowed to 0.0 or -0.0 over a stretch of the grid
    (every gamma negligible there) is no change of sign."""
    n = vals.size
    idx = np.arange(n)
    nz = (vals != 0) & np.isfinite(vals)
    left = np.maximum.accumulate(np.where(nz, idx, -1))
    right = np.minimum.accumulate(np.where(nz, idx, n)[::-1])[::-1]
    both = (left >= 0) & (right < n)
    out = np.zeros(n, dtype=bool)
    out[both] = np.signbit(vals[left[both]]) != np.signbit(vals[right[both]])
    return out


def _bisect(f, a, b, fa, scale) -> float:
    """The root in [a, b] by bisection, for the rare full-grid path: its profiles underflow over much of
    the grid, where bracket values can differ by a hundred orders of magnitude and secant-type steps
    crawl; halving converges in ~40 steps whatever the values."""
    for _ in range(MAX_ITER):
        c = 0.5 * (a + b)
        fc = float(f(c)[0])
        if fc == 0 or abs(b - a) < BRACKET_TOL * scale:
            return float(c)
        if np.signbit(fc) == np.signbit(fa):
            a, fa = c, fc
        else:
            b = c
    return float(0.5 * (a + b))
