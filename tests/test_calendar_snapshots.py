"""Session.snapshot_times and Session.early_close, made cheaper, equal their plain definitions."""

from __future__ import annotations

import datetime as dt

from gexhistory.calendar import CALENDAR_START, EARLY_CLOSE_SNAPSHOTS, ET, REGULAR_SNAPSHOTS, sessions_between


def _snapshot_times_by_combine(s, labels):
    """The construction snapshot_times used before it was made cheaper: combine() each label, clamp."""
    out = []
    for label in labels:
        hh, mm = (int(x) for x in label.split(":"))
        t = dt.datetime.combine(s.date, dt.time(hh, mm), tzinfo=ET)
        out.append(min(max(t, s.open), s.close))
    return out


def test_snapshot_times_and_early_close_equal_their_plain_definitions_on_every_session():
    custom = ("00:00", "09:29", "09:31", "13:00", "13:01", "15:59", "16:00", "23:59")
    for s in sessions_between(CALENDAR_START, dt.date(2030, 1, 1)):
        early = s.close.time() < dt.time(16, 0)
        assert s.early_close == early
        labels = EARLY_CLOSE_SNAPSHOTS if early else REGULAR_SNAPSHOTS
        times = s.snapshot_times()
        assert times == _snapshot_times_by_combine(s, labels)
        assert [t.utcoffset() for t in times] == [t.utcoffset() for t in _snapshot_times_by_combine(s, labels)]
        assert s.snapshot_times(custom, custom) == _snapshot_times_by_combine(s, custom)
    assert sessions_between(dt.date(2025, 3, 10), dt.date(2025, 3, 10))[0].snapshot_times(
        ["09:30", "10:15"], ["09:30"])[1].time() == dt.time(10, 15)  # lists of labels work too
