"""A stand-in for gexhistory.pipeline.profile.strike_profile while the data side is built on its own
branch: the shape the profile API reads, filled from the stored gex_history row (not from a chain).

Only for exercising the page and its replay; the values are not GEX by strike. Removed once
pipeline/profile.py is merged.
"""

from __future__ import annotations

import numpy as np

from helpers import rows

SHARES = {"0DTE": 0.1, "this week": 0.3, "monthly": 0.2, "other": 0.4}


def strike_profile(symbol: str, at: str, db: str) -> dict:
    spot, net, call, put, flip = rows(db, "SELECT spot_price, net_gex, call_gex, put_gex, flip_point FROM gex_history "
                                          "WHERE symbol=:s AND timestamp=:t", s=symbol, t=at)[0]
    strikes = np.arange(np.ceil(spot * 0.8 / 5) * 5, spot * 1.2, 5.0)
    cw = np.exp(-((strikes - spot * 1.02) / (spot * 0.03)) ** 2)
    pw = np.exp(-((strikes - spot * 0.98) / (spot * 0.03)) ** 2)
    calls, puts = call * cw / cw.sum(), put * pw / pw.sum()
    spots = np.linspace(spot * 0.8, spot * 1.2, 81)
    centre = flip if flip is not None else spot * 0.9
    curve = net * np.tanh((spots - centre) / (spot * 0.05)) / np.tanh((spot - centre) / (spot * 0.05) or 1.0)
    return {"strikes": strikes, "call_gex": calls, "put_gex": puts,
            "buckets": {b: {"call_gex": calls * f, "put_gex": puts * f} for b, f in SHARES.items()},
            "curve_spots": spots, "curve_net_gex": curve, "flip_point": flip, "net_gex": net}
