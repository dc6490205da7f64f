"""An imported option chain for the profile tests: a few hundred contracts around a session's stored
close, written as a generic chain file and imported, plus the independent per-strike GEX of it."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from gexhistory.calendar import sessions_between
from gexhistory.pipeline.import_chains import import_chains
from helpers import rows

NY = ZoneInfo("America/New_York")
R, Q = 0.04, 0.013  # the engine's documented default conventions


def contracts_for(day: dt.date, spot: float) -> list[tuple]:
    """Calls massed above spot, puts below, IV skewed; expiries: the Fridays of the next eight weeks
    (this week's among them) and the third Friday two months on."""
    fridays = [s.date for s in sessions_between(day, day + dt.timedelta(days=56)) if s.date.weekday() == 4]
    out = []
    base = round(spot / 5) * 5
    for j, e in enumerate(fridays):
        for k in np.arange(base - 100, base + 105, 5.0):
            iv = 0.16 + 0.25 * (spot - k) / spot + 0.01 * j
            call_oi = round(4000 * math.exp(-((k - spot * 1.03) / 25) ** 2)) + 50
            put_oi = round(6000 * math.exp(-((k - spot * 0.95) / 30) ** 2)) + 70
            out.append((e, float(k), "C", call_oi, round(iv, 6)))
            out.append((e, float(k), "P", put_oi, round(iv + 0.02, 6)))
    return out


def import_chain(db: str, folder: Path, day: dt.date, symbol: str = "SPY") -> tuple[list[tuple], float, str]:
    """Import a chain for `day` at its stored close: (contracts, spot, chain_source)."""
    spot = rows(db, "SELECT close_price FROM gamma_daily_summary WHERE symbol=:s AND date=:d", s=symbol,
                d=day.isoformat())[0][0]
    contracts = contracts_for(day, spot)
    path = folder / f"{symbol.lower()}_{day}.csv"
    lines = [f"{day},{symbol},{e},{k},{r},{oi},{iv},{spot}" for e, k, r, oi, iv in contracts]
    path.write_text("date,underlying,expiration,strike,right,oi,iv,spot\n" + "\n".join(lines) + "\n")
    import_chains([str(path)], db=db)
    return contracts, spot, f"generic:{path.name}"


def per_strike(contracts: list[tuple], spot: float, at: dt.datetime) -> dict[float, tuple[float, float]]:
    """{strike: (call GEX, put GEX)} at spot and `at`, from the Black-Scholes gamma written here with
    scipy (puts negative; contracts past the 120-day window left out as the engine does)."""
    from scipy.stats import norm

    out: dict[float, list[float]] = {}
    for e, k, r, oi, iv in contracts:
        t = (dt.datetime.combine(e, dt.time(16), tzinfo=NY) - at).total_seconds() / (365 * 86400)
        if t <= 0 or t > 121 / 365:
            continue
        d1 = (math.log(spot / k) + (R - Q + iv * iv / 2) * t) / (iv * math.sqrt(t))
        g = math.exp(-Q * t) * norm.pdf(d1) / (spot * iv * math.sqrt(t)) * oi * 100 * spot * spot * 0.01
        cell = out.setdefault(k, [0.0, 0.0])
        cell[0 if r == "C" else 1] += g if r == "C" else -g
    return {k: (c, p) for k, (c, p) in out.items()}
