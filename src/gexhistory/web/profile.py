"""What /gex/profile and /api/gex/profile show: one stored snapshot's GEX by strike, by expiry bucket,
and across hypothetical spots, with the snapshot's stored numbers.

The chain is rebuilt by the pipeline exactly as the backfill built it (pipeline/profile.py: modelled
from the stored bars, or the imported chain from option_chains), so the net GEX at spot equals the
stored gex_history.net_gex. The page draws from the same dict the API returns.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re

from sqlalchemy import Engine

from gexhistory.engine.profile import BUCKETS
from gexhistory.errors import WorkFailed
from gexhistory.pipeline.profile import strike_profile
from gexhistory.store import queries as q
from gexhistory.web.params import BadRequest
from gexhistory.web.views import NotFound

BUCKET_NAMES = {"0dte": "0DTE", "this_week": "this week", "monthly": "monthly", "other": "other"}
_AT = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$")


class ProfileUnavailable(Exception):
    """The snapshot's chain cannot be rebuilt (its bars or imported chain are gone, or its run's recorded
    parameters are another version's): answered 503 with the reason."""


def parse_at(raw: str | None) -> str | None:
    """'2026-03-16T16:00', '2026-03-16 16:00:00' -> '2026-03-16 16:00:00'; a bare date means that
    session's close (its last snapshot): '2026-03-16 23:59:59'. None: the latest snapshot."""
    if raw is None or raw == "":
        return None
    m = _AT.match(raw.strip())
    if not m:
        raise BadRequest(f"at must be YYYY-MM-DD or YYYY-MM-DDTHH:MM, got {raw!r}")
    day, hh, mm, ss = m.groups()
    try:
        dt.date.fromisoformat(day)
    except ValueError:
        raise BadRequest(f"at must be a real date, got {raw!r}") from None
    if hh is None:
        return f"{day} 23:59:59"
    if int(hh) > 23 or int(mm) > 59 or int(ss or 0) > 59:
        raise BadRequest(f"at must be a real time of day, got {raw!r}")
    return f"{day} {hh}:{mm}:{ss or '00'}"


def snapshot(engine: Engine, symbol: str, at: str | None) -> dict:
    """The stored snapshot `at` names (see parse_at), or NotFound naming the day."""
    ts = at or q.latest_timestamp(engine, symbol)
    snap = q.snapshot_at(engine, symbol, ts) if ts else None
    if snap is None:
        when = "" if ts is None else f" on {ts[:10]}" + ("" if ts.endswith("23:59:59") else f" at or before {ts[11:16]}")
        raise NotFound(f"no stored {symbol} snapshot{when}: /api/gex/profile/sessions lists the stored sessions")
    return snap


def _floats(xs) -> list:
    return [None if x is None else float(x) for x in xs]


def profile(engine: Engine, db: str | None, symbol: str, at: str | None) -> dict:
    """The API's `data`: the stored row's numbers (the cards), call and put GEX per strike (every strike
    with gamma), net GEX per strike of each expiry bucket, and the net GEX curve across hypothetical
    spots (+-20%, the flip search range) with the flip; profile_net_gex is the rebuilt chain's net GEX
    at spot, which equals the stored net_gex."""
    snap = snapshot(engine, symbol, at)
    try:
        sp = strike_profile(symbol, at=snap["timestamp"], db=db)
    except WorkFailed as exc:
        raise ProfileUnavailable(str(exc)) from None
    p = sp.profile
    keep = (p.call_gex != 0) | (p.put_gex != 0)  # strikes beyond the DTE window or without OI add nothing
    return {
        **snap, "symbol": symbol, "date": snap["timestamp"][:10],
        "modelled": snap["chain_source"] == "modelled",
        "strikes": {"strike": _floats(p.strikes[keep]), "call_gex": _floats(p.call_gex[keep]),
                    "put_gex": _floats(p.put_gex[keep])},
        "buckets": [{"bucket": BUCKET_NAMES[b], "key": b, "net_gex": _floats(p.bucket_gex[b][keep])} for b in BUCKETS],
        "curve": {"spot": _floats(p.curve_spot), "net_gex": _floats(p.curve_net_gex)},
        "profile_net_gex": float(p.snapshot.net_gex), "profile_flip_point": p.snapshot.flip_point,
        "conventions": sp.conventions.as_dict(), "notes": list(sp.notes),
    }


def replay_steps(engine: Engine, symbol: str) -> list[dict]:
    """The replay's steps: every stored session's close snapshot, oldest first."""
    return q.close_snapshots(engine, symbol)


def step_index(steps: list[dict], ts: str) -> int:
    """The step of the session `ts` belongs to (its close), or the nearest earlier one."""
    days = [s["timestamp"][:10] for s in steps]
    return max(0, bisect.bisect_right(days, ts[:10]) - 1)
