"""Flip point search: the zero crossing of the net GEX profile nearest spot, for several snapshots at once.

The profile at a hypothetical spot S is S * sum(sign*OI * gamma(S)). With gamma = e^{-qT} n(d1) / (S vol sqrt T)
the S cancels, and each merged position contributes coef * exp(-d1^2 / 2) with d1 affine in log(S / spot):
one exp per position and point, no log, no division. The answer is the same as scanning the whole
+-flip_search grid and refining the nearest bracketed crossing with Illinois regula falsi, but the grid is
scanned from spot outwards and stops at the first ring of brackets that crosses: a crossing found in ring r
is nearer spot than any crossing further out, so the far grid points cannot change the answer. A grid
value of exactly zero could (the scan's rule for exact zeros looks at the whole grid); so a snapshot where
one might occur (no position whose term stays a normal float over the whole grid) or does occur takes the
plain full-grid path instead.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gexhistory.engine.greeks import _INV_SQRT_2PI, MIN_T_YEARS, SECONDS_PER_YEAR, bs_gamma

FLIP_GRID_POINTS = 25  # 1.67% spacing at +-20%; each bracketed crossing is then refined exactly
REL_TOL = 1e-12  # Illinois stops when the bracket is narrower than this fraction of spot
MAX_ITER = 100
_NORMAL_D1 = 37.0  # exp(-37^2/2) ~ 1e-297: a term with |d1| below this is a normal, nonzero float


def flips_for_positions(k, e, iv, sign_oi, spots, at_ts, r: float, q: float, flip_search: float) -> list[float | None]:
    """Flip per snapshot (spots[j] at at_ts[j]) for merged positions (strike k, expiry close e in POSIX
    seconds, iv, calls' OI minus puts' OI). Positions are 1-D (shared by every snapshot) or 2-D, one row
    per snapshot, so snapshots of different chains go in one call (pad with zero OI: see pad_positions)."""
    spots = np.asarray(spots, dtype=float)
    at_ts = np.asarray(at_ts, dtype=float)
    n = spots.size
    out: list[float | None] = [None] * n
    if np.shape(k)[-1] == 0 or n == 0:
        return out
    k, e, iv, sign_oi = (np.broadcast_to(a, (n, np.shape(a)[-1])) for a in (k, e, iv, sign_oi))
    rel = np.linspace(1 - flip_search, 1 + flip_search, FLIP_GRID_POINTS)
    grid = spots[:, None] * rel[None, :]
    t = (e - at_ts[:, None]) / SECONDS_PER_YEAR
    live = t > 0
    tt = np.maximum(np.where(live, t, 1.0), MIN_T_YEARS)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        vst = iv * np.sqrt(tt)
        slope = 1.0 / vst  # d1 per unit of log(S / spot)
        d1_spot = (np.log(spots[:, None] / k) + (r - q + 0.5 * iv * iv) * tt) / vst
        coef = np.where(live, sign_oi, 0.0) * np.exp(-q * tt) / vst * _INV_SQRT_2PI
        x = np.log(rel)
        reach = np.maximum(np.abs(d1_spot + slope * x[0]), np.abs(d1_spot + slope * x[-1]))
    # |d1| is affine in x, so its largest value on the grid is at an end.
    anchored = ((coef != 0) & np.isfinite(coef) & (reach < _NORMAL_D1)).any(axis=1)
    anchored &= np.isfinite(coef).all(axis=1) & np.isfinite(d1_spot).all(axis=1)
    scan = _Scan(slope, d1_spot, coef, x)

    bracket = np.full(n, -1)
    vals = np.full((n, FLIP_GRID_POINTS), np.nan)
    fallback = ~anchored
    todo = np.flatnonzero(anchored)
    for ring in _rings_for(float(flip_search)):
        if todo.size == 0:
            break
        need = np.unique(np.concatenate([ring, ring + 1]))
        need = need[np.isnan(vals[todo[0], need])]
        if need.size:
            vals[np.ix_(todo, need)] = scan.at_points(todo, need)
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
        roots = _illinois(scan, hit, grid[hit, i], grid[hit, i + 1], vals[hit, i], vals[hit, i + 1], spots[hit])
        for j, c in zip(hit, roots):
            out[j] = float(c)
    for j in np.flatnonzero(fallback):
        out[j] = _full_grid_flip(k[j], tt[j], iv[j], np.where(live[j], sign_oi[j], 0.0), grid[j], spots[j], r, q)
    return out


def pad_positions(sets: list[tuple], repeats: list[int]):
    """Stack position sets (k, e, iv, sign_oi) into 2-D arrays, set i repeated repeats[i] times. Padding
    has zero OI and an expiry in the past, so it adds exact zeros to every sum."""
    width = max((len(s[0]) for s in sets), default=0)
    rows = int(sum(repeats))
    k, iv = np.ones((rows, width)), np.ones((rows, width))
    e, w = np.full((rows, width), -np.inf), np.zeros((rows, width))
    r = 0
    for (sk, se, siv, sw), m in zip(sets, repeats):
        n = len(sk)
        k[r:r + m, :n], e[r:r + m, :n], iv[r:r + m, :n], w[r:r + m, :n] = sk, se, siv, sw
        r += m
    return k, e, iv, w


class _Scan:
    """The profile of each snapshot as sum(coef * exp(-d1^2/2)), d1 = d1_spot + slope * log(S/spot)."""

    def __init__(self, slope, d1_spot, coef, x):
        self.slope, self.d1_spot, self.coef, self.x = slope, d1_spot, coef, x

    def at_points(self, rows, points):
        d = self.slope[rows][:, None, :] * self.x[points][None, :, None]
        d += self.d1_spot[rows][:, None, :]
        return _gauss_dot(d, self.coef[rows][:, :, None])[..., 0]

    def rows(self, rows) -> "_Scan":
        return _Scan(self.slope[rows], self.d1_spot[rows], self.coef[rows], self.x)

    def at(self, s, spots):
        """One point per row: row i at s[i]."""
        d = self.slope * np.log(s / spots)[:, None]
        d += self.d1_spot
        return _gauss_dot(d[:, None, :], self.coef[:, :, None])[:, 0, 0]


def _gauss_dot(d, coef):
    """exp(-d^2/2) @ coef; d is scratch."""
    np.multiply(d, d, out=d)
    d *= -0.5
    np.exp(d, out=d)
    return np.matmul(d, coef)


@lru_cache(maxsize=16)
def _rings_for(flip_search: float) -> tuple:
    return tuple(_rings(np.linspace(1 - flip_search, 1 + flip_search, FLIP_GRID_POINTS)))


def _rings(rel):
    """Bracket indices grouped by distance of their midpoint from spot, nearest first."""
    mid = np.abs((rel[:-1] + rel[1:]) / 2 - 1.0)
    step = (rel[-1] - rel[0]) / (rel.size - 1)
    rank = np.round(mid / step * 2).astype(int)
    return [np.flatnonzero(rank == r) for r in np.unique(rank)]


def _illinois(scan, rows, a, b, fa, fb, scale):
    """Regula falsi with the Illinois modification, run for every row at once; each row stops exactly
    when its own scalar run would. Rows still running are kept packed, re-packed only when some stop."""
    a, b, fa, fb, scale = (np.array(v, dtype=float) for v in (a, b, fa, fb, scale))
    side = np.zeros(rows.size, dtype=int)
    c = a.copy()
    act = np.arange(rows.size)
    sub = scan.rows(rows)
    for _ in range(MAX_ITER):
        if act.size == 0:
            break
        A, B, FA, FB, S = a[act], b[act], fa[act], fb[act], side[act]
        cc = (A * FB - B * FA) / (FB - FA)
        fc = sub.at(cc, scale[act])
        c[act] = cc
        stop = (fc == 0) | (np.abs(B - A) < REL_TOL * scale[act])
        same = (np.signbit(fc) == np.signbit(FB)) & ~stop
        other = ~same & ~stop
        fa[act] = np.where(other, fc, np.where(same & (S == -1), FA / 2, FA))
        fb[act] = np.where(same, fc, np.where(other & (S == 1), FB / 2, FB))
        a[act] = np.where(other, cc, A)
        b[act] = np.where(same, cc, B)
        side[act] = np.where(same, -1, np.where(other, 1, S))
        going = ~(stop | (np.abs(b[act] - a[act]) < REL_TOL * scale[act]))
        if not going.all():
            act, sub = act[going], sub.rows(np.flatnonzero(going))
    return c


def _full_grid_flip(k, t, iv, w, grid, spot, r, q) -> float | None:
    """The whole grid, then the crossing nearest spot (or the nearest exact zero), refined."""

    def profile(s):
        s = np.atleast_1d(np.asarray(s, dtype=float))[:, None]
        return (bs_gamma(s, k, t, iv, r, q) * w).sum(axis=1) * s[:, 0]

    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        vals = profile(grid)
    return _nearest_crossing(profile, grid, vals, spot)


def _nearest_crossing(profile, grid, vals, spot) -> float | None:
    exact = np.flatnonzero(vals == 0)
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
    return _scalar_illinois(profile, grid[i], grid[i + 1], vals[i], vals[i + 1], spot)


def _scalar_illinois(f, a, b, fa, fb, scale) -> float:
    side = 0
    c = a
    for _ in range(MAX_ITER):
        c = (a * fb - b * fa) / (fb - fa)
        fc = float(f(c)[0])
        if fc == 0 or abs(b - a) < REL_TOL * scale:
            return float(c)
        if np.signbit(fc) == np.signbit(fb):
            b, fb = c, fc
            if side == -1:
                fa /= 2
            side = -1
        else:
            a, fa = c, fc
            if side == 1:
                fb /= 2
            side = 1
        if abs(b - a) < REL_TOL * scale:
            break
    return float(c)
