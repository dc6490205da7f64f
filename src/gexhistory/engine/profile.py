"""One snapshot's GEX by strike: calls and puts per strike, per expiry bucket, and net GEX across
hypothetical spots, the curve whose zero crossing nearest spot is the flip point.

Every number comes from exposure.compute_gex, the one entry point: the snapshot itself at its spot and
time (so its net GEX is the one stored for that snapshot), each expiry bucket's contracts as a chain of
their own at the same spot and time (the buckets add up to the whole, to rounding), and the curve as
snapshots of the whole chain at hypothetical spots, time and IVs held fixed as the flip search holds
them. Buckets, by the expiry's date against the snapshot's date: 0DTE (expiring that day), this week
(after it, up to that week's Friday), monthly (a later standard monthly: the third Friday, or the
Thursday before when that Friday is a holiday and lists nothing), other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import GexSnapshot, compute_gex, compute_gex_one
from gexhistory.engine.params import Conventions
from gexhistory.engine.structure import is_monthly_expiry

BUCKETS = ("0dte", "this_week", "monthly", "other")
CURVE_POINTS = 81  # 0.5% apart over +-20%
_CURVE_SLICE = 16  # hypothetical spots per engine call: bounds the (spot, contract) pairs held at once


@dataclass
class GexProfile:
    """A snapshot and its GEX by strike (dollars per 1% move; calls +, puts -)."""

    snapshot: GexSnapshot  # everything stored about the snapshot: net GEX, flip point, walls, ...
    strikes: np.ndarray  # every strike of the chain, ascending
    call_gex: np.ndarray  # per strike
    put_gex: np.ndarray  # per strike
    bucket_gex: dict[str, np.ndarray]  # per BUCKETS name: net GEX per strike of that bucket's expiries
    curve_spot: np.ndarray  # hypothetical spots, ascending; the middle one is the snapshot's spot
    curve_net_gex: np.ndarray  # net GEX at each

    @property
    def net_gex(self) -> np.ndarray:
        """Net GEX per strike."""
        return self.call_gex + self.put_gex


def expiry_buckets(expiry: np.ndarray, day: dt.date) -> np.ndarray:
    """Index into BUCKETS of each expiry (datetime64[D]) seen on `day`. A monthly is the third Friday, or
    the Thursday before it when the expiries hold nothing on that Friday (a holiday moved it there)."""
    e = np.asarray(expiry, dtype="datetime64[D]")
    today = np.datetime64(day, "D")
    friday = today + np.timedelta64(4 - day.weekday(), "D")
    candidate = is_monthly_expiry(e)
    third_friday = candidate & ((e.astype(np.int64) + 3) % 7 == 4)  # 1970-01-01 was a Thursday; Monday = 0
    moved = candidate & ~third_friday & ~np.isin(e + np.timedelta64(1, "D"), e[third_friday])
    return np.select([e == today, (e > today) & (e <= friday), third_friday | moved], [0, 1, 2], 3)


def gex_profile(chain: OptionChain, spot: float, at: dt.datetime, conv: Conventions | None = None,
                points: int = CURVE_POINTS) -> GexProfile:
    """The profile of `chain` at `spot` and `at` (tz-aware; buckets use its date in its own zone).

    The curve spans +-conv.flip_search around spot in `points` steps (an odd number keeps spot itself
    on it); the flip point is the snapshot's.
    """
    conv = conv or Conventions()
    snap = compute_gex_one(chain, spot, at, conv)
    bucket = expiry_buckets(chain.expiry, at.date())
    parts = compute_gex([chain.take(bucket == b) for b in range(len(BUCKETS))], [[spot]] * len(BUCKETS),
                        [[at]] * len(BUCKETS), conv, with_flip=False)
    by_bucket = {}
    for name, (part,) in zip(BUCKETS, parts):
        col = np.zeros(snap.strikes.size)
        col[np.searchsorted(snap.strikes, part.strikes)] = part.call_gex_by_strike + part.put_gex_by_strike
        by_bucket[name] = col
    curve = spot * np.linspace(1 - conv.flip_search, 1 + conv.flip_search, points)
    if points % 2:
        curve[points // 2] = spot
    net = [s.net_gex for lo in range(0, points, _CURVE_SLICE)
           for s in compute_gex([chain], [curve[lo:lo + _CURVE_SLICE]], [[at] * curve[lo:lo + _CURVE_SLICE].size],
                                conv, with_flip=False)[0]]
    return GexProfile(snap, snap.strikes, snap.call_gex_by_strike, snap.put_gex_by_strike, by_bucket, curve,
                      np.array(net))
