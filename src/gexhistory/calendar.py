"""NYSE sessions and the four snapshot times of each session, in America/New_York."""

from __future__ import annotations

import bisect
import datetime as dt
import os
from array import array
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from zoneinfo import ZoneInfo

from gexhistory.errors import BadInput

TZ_NAME = "America/New_York"  # the zone every stored timestamp is in
ET = ZoneInfo(TZ_NAME)
CALENDAR_START = dt.date(1995, 1, 3)

# Session-relative snapshot times (docs/computation.md): open, midday, late afternoon, close.
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
_CACHE_FORMAT = 1  # first int64 of the cache file; bump when the layout below changes


def _calendar_version() -> str | None:
    """exchange_calendars' installed version, without importing it (it imports pandas)."""
    spec = find_spec("exchange_calendars")
    if spec is None or not spec.origin:
        return None
    # The dist-info folder beside the package names the version; importlib.metadata (a scan of every
    # path entry) is the fallback for installs laid out otherwise.
    site = Path(spec.origin).parent.parent
    found = sorted(site.glob("exchange_calendars-*.dist-info"))
    if len(found) == 1:
        return found[0].name[len("exchange_calendars-"):-len(".dist-info")]
    from importlib.metadata import version  # lazy: a fallback; scanning every install costs ~10 ms

    return version("exchange_calendars")


def _cache_file() -> Path | None:
    """Where the session table is cached; None when exchange_calendars is missing."""
    root = os.environ.get("GEXHISTORY_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    try:
        xv = _calendar_version()
    except Exception:  # noqa: BLE001 - without the package the calendar cannot be built anyway
        return None
    if xv is None:
        return None
    return Path(root) / "gexhistory" / f"xnys-{xv}-{CALENDAR_START.isoformat()}.i64"


def _read_cache(path: Path, today: int) -> tuple[list[int], list[int], list[int]] | None:
    """The cached table when the file is whole and fresh. Layout: native int64s
    [format, built (ordinal), n, n dates (ordinals), n opens, n closes (POSIX seconds)]."""
    a = array("q")
    try:
        a.frombytes(path.read_bytes())
    except (OSError, ValueError):  # missing, unreadable, or not a whole number of int64s
        return None
    if len(a) < 3 or a[0] != _CACHE_FORMAT or len(a) != 3 + 3 * a[2] or today - a[1] > CACHE_MAX_AGE.days:
        return None
    n = a[2]
    return a[3:3 + n].tolist(), a[3 + n:3 + 2 * n].tolist(), a[3 + 2 * n:].tolist()


def _write_cache(path: Path, today: int, days: list[int], opens: list[int], closes: list[int]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(array("q", [_CACHE_FORMAT, today, len(days), *days, *opens, *closes]).tobytes())
        os.replace(tmp, path)  # atomic: concurrent runs never read a half-written cache
    except OSError:
        pass  # no writable cache folder: the next run builds the table again


def _session_table() -> tuple[list[int], list[int], list[int]]:
    """(dates as ordinals, opens, closes as POSIX seconds), from the cache when it is fresh.

    Building the XNYS calendar imports pandas and takes most of a no-op run's time, so the table is
    cached per exchange_calendars version and rebuilt monthly (new years' holidays get published).
    The cache is plain int64s so that reading it needs neither pandas nor numpy.
    """
    path = _cache_file()
    today = dt.date.today().toordinal()
    if path is not None:
        cached = _read_cache(path, today)
        if cached is not None:
            return cached
    # lazy: only when the cache is stale; exchange_calendars imports pandas (most of a no-op run's time)
    import exchange_calendars as xcals
    import numpy as np

    cal = xcals.get_calendar("XNYS", start=CALENDAR_START.isoformat())
    days = [d.toordinal() for d in cal.sessions.date]
    opens = cal.opens.dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64).tolist()
    closes = cal.closes.dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64).tolist()
    if path is not None:
        _write_cache(path, today, days, opens, closes)
    return days, opens, closes


@lru_cache(maxsize=1)
def _table() -> tuple[list[int], list[int], list[int], list[Session | None]]:
    """Session dates (ordinals), opens and closes (POSIX seconds), and the Session objects made so far.

    Sessions are made on first use: a run looks at a few thousand of the calendar's ~8,000."""
    days, opens, closes = _session_table()
    return days, opens, closes, [None] * len(days)


def _sessions(lo: int, hi: int) -> list[Session]:
    days, opens, closes, made = _table()
    for i in range(lo, hi):
        if made[i] is None:
            made[i] = Session(dt.date.fromordinal(days[i]), dt.datetime.fromtimestamp(opens[i], ET),
                              dt.datetime.fromtimestamp(closes[i], ET))
    return made[lo:hi]


def sessions_between(start: dt.date, end: dt.date) -> list[Session]:
    """NYSE sessions with start <= date <= end (weekends, holidays and special closures excluded)."""
    if end < start:
        raise BadInput(f"end date {end} is before start date {start}")
    if start < CALENDAR_START:
        raise BadInput(f"start date {start} is before the supported calendar start {CALENDAR_START}")
    days = _table()[0]
    return _sessions(bisect.bisect_left(days, start.toordinal()), bisect.bisect_right(days, end.toordinal()))


def sessions_before(day: dt.date, count: int) -> list[Session]:
    """The `count` sessions strictly before `day` (fewer at the calendar's start)."""
    hi = bisect.bisect_left(_table()[0], day.toordinal())
    return _sessions(max(0, hi - count), hi)


def last_completed_session(now: dt.datetime | None = None) -> Session:
    """The latest session whose close is at or before `now` (ET)."""
    now = (now or dt.datetime.now(ET)).astimezone(ET)
    idx = bisect.bisect_right(_table()[2], now.timestamp()) - 1
    if idx < 0:
        raise BadInput("no completed NYSE session before now")
    return _sessions(idx, idx + 1)[0]


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
