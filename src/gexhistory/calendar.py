"""NYSE sessions and the four snapshot times of each session, in America/New_York."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from gexhistory.errors import BadInput

ET = ZoneInfo("America/New_York")
CALENDAR_START = dt.date(1995, 1, 3)

# Session-relative snapshot times (SPEC §2): open, midday, late afternoon, close.
REGULAR_SNAPSHOTS = ("09:30", "12:30", "15:00", "16:00")
EARLY_CLOSE_SNAPSHOTS = ("09:30", "11:00", "12:00", "13:00")


@lru_cache(maxsize=16)
def _clocks(labels: tuple[str, ...]) -> tuple[dt.timedelta, ...]:
    """'HH:MM' labels as times since midnight, parsed once (snapshot_times runs for every session)."""
    return tuple(dt.timedelta(hours=int(hh), minutes=int(mm)) for hh, mm in (label.split(":") for label in labels))


@dataclass(frozen=True)
class Session:
    date: dt.date
    open: dt.datetime  # tz-aware ET
    close: dt.datetime  # tz-aware ET

    @property
    def early_close(self) -> bool:
        return self.close.hour < 16  # the same as close.time() < 16:00, without building a time

    @property
    def minutes(self) -> int:
        return int((self.close - self.open).total_seconds() // 60)

    def snapshot_times(
        self,
        regular: tuple[str, ...] = REGULAR_SNAPSHOTS,
        early: tuple[str, ...] = EARLY_CLOSE_SNAPSHOTS,
    ) -> list[dt.datetime]:
        """The snapshot times of this session (ET wall-clock labels), each clamped into [open, close]."""
        o = self.open
        midnight = dt.timedelta(0, o.hour * 3600 + o.minute * 60 + o.second, o.microsecond)  # open, since 00:00
        out = []
        for since_midnight in _clocks(tuple(early if self.early_close else regular)):
            # Wall-clock arithmetic (same tzinfo): the label's time on this date, far cheaper than combine().
            t = o + (since_midnight - midnight)
            out.append(o if t < o else self.close if t > self.close else t)
        return out


CACHE_MAX_AGE = dt.timedelta(days=30)


def _cache_file():
    """Where the session table is cached; None when no writable cache folder exists."""
    import os
    from importlib.metadata import version
    from pathlib import Path

    root = os.environ.get("GEXHISTORY_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    try:
        xv = version("exchange_calendars")
    except Exception:  # noqa: BLE001 - without the package the calendar cannot be built anyway
        return None
    return Path(root) / "gexhistory" / f"xnys-{xv}-{CALENDAR_START.isoformat()}.npz"


def _session_table():
    """(dates as ordinals, opens, closes as POSIX seconds), from the cache when it is fresh.

    Building the XNYS calendar imports pandas and takes most of a no-op run's time, so the table is
    cached per exchange_calendars version and rebuilt monthly (new years' holidays get published).
    """
    import numpy as np

    path = _cache_file()
    today = dt.date.today().toordinal()
    if path is not None and path.exists():
        try:
            with np.load(path) as z:
                if today - int(z["built"]) <= CACHE_MAX_AGE.days:
                    return z["days"], z["opens"], z["closes"]
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: rebuild it below
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start=CALENDAR_START.isoformat())
    days = np.array([d.toordinal() for d in cal.sessions.date])
    opens = cal.opens.dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64)
    closes = cal.closes.dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, days=days, opens=opens, closes=closes, built=np.array(today))
            os.replace(tmp, path)  # atomic: concurrent runs never read a half-written cache
        except OSError:
            pass
    return days, opens, closes


@lru_cache(maxsize=1)
def _all_sessions() -> tuple[Session, ...]:
    days, opens, closes = _session_table()
    out = []
    for d, o, c in zip(days.tolist(), opens.tolist(), closes.tolist()):
        out.append(Session(dt.date.fromordinal(d), dt.datetime.fromtimestamp(o, ET), dt.datetime.fromtimestamp(c, ET)))
    return tuple(out)


def sessions_between(start: dt.date, end: dt.date) -> list[Session]:
    """NYSE sessions with start <= date <= end (weekends, holidays and special closures excluded)."""
    if end < start:
        raise BadInput(f"end date {end} is before start date {start}")
    if start < CALENDAR_START:
        raise BadInput(f"start date {start} is before the supported calendar start {CALENDAR_START}")
    import bisect

    sessions = _all_sessions()
    dates = [s.date for s in sessions]
    lo = bisect.bisect_left(dates, start)
    hi = bisect.bisect_right(dates, end)
    return list(sessions[lo:hi])


def sessions_before(day: dt.date, count: int) -> list[Session]:
    """The `count` sessions strictly before `day` (fewer at the calendar's start)."""
    import bisect

    sessions = _all_sessions()
    dates = [s.date for s in sessions]
    hi = bisect.bisect_left(dates, day)
    return list(sessions[max(0, hi - count):hi])


def last_completed_session(now: dt.datetime | None = None) -> Session:
    """The latest session whose close is at or before `now` (ET)."""
    now = (now or dt.datetime.now(ET)).astimezone(ET)
    import bisect

    sessions = _all_sessions()
    closes = [s.close for s in sessions]
    idx = bisect.bisect_right(closes, now) - 1
    if idx < 0:
        raise BadInput("no completed NYSE session before now")
    return sessions[idx]


def window_for_days(days: int, now: dt.datetime | None = None) -> tuple[dt.date, dt.date]:
    """--days N: N calendar days ending at the last completed session."""
    end = last_completed_session(now).date
    return end - dt.timedelta(days=days - 1), end


def session_on(day: dt.date) -> Session | None:
    found = sessions_between(day, day)
    return found[0] if found else None


def format_ts(t: dt.datetime) -> str:
    """'YYYY-MM-DD HH:MM:SS' in ET, the AlphaGEX timestamp format."""
    return t.astimezone(ET).strftime("%Y-%m-%d %H:%M:%S")
