"""A Massive/Polygon aggregates server on 127.0.0.1 for tests, with a deterministic market.

Responses have the real API's shape: `results` of bars with t,o,h,l,c,v,vw,n; `status` OK/DELAYED;
`ticker`, `queryCount`, `resultsCount`, `count`, `adjusted`, `request_id`; `next_url` (an absolute
https URL on api.massive.com with a `cursor`, as the real service writes it) when a page is full;
NOT_AUTHORIZED as HTTP 403 with `status` and `message`. Minute responses include pre- and post-market
bars (04:00 to 4 hours after the close), as the real ones do.

The price series is a closed-form function of the date and the minute, so tests compute the price
they expect at any snapshot time independently of the code under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable
from zoneinfo import ZoneInfo

from werkzeug import Request, Response

ET = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
PATH_RE = re.compile(r"^/v2/aggs/ticker/(?P<t>[^/]+)/range/1/(?P<span>day|minute)/(?P<a>\d{4}-\d\d-\d\d)/(?P<b>\d{4}-\d\d-\d\d)$")
EXTENDED_START = dt.time(4, 0)


def _session_table():
    from gexhistory.calendar import sessions_between

    return sessions_between


LEVELS = {"SPY": 450.0, "QQQ": 380.0, "I:VIX": 18.0}


def _prices(day: dt.date, minutes_of_day, symbol: str):
    import numpy as np

    i = (day - dt.date(2020, 1, 1)).days
    level = LEVELS.get(symbol, 100.0)
    m = np.asarray(minutes_of_day, dtype=float)
    x = level + 0.08 * level * math.sin(i / 37.0) + 0.002 * level * (i % 11)
    return np.round(x + 0.004 * level * np.sin(m / 50.0) + 0.00001 * level * m, 2)


def price(day: dt.date, minute_of_day: int, symbol: str = "SPY") -> float:
    """The traded price at `minute_of_day` minutes after midnight ET on `day` (cents)."""
    return float(_prices(day, [minute_of_day], symbol)[0])


def _minute_bars(day: dt.date, minutes_of_day: range, symbol: str) -> list[dict]:
    import numpy as np

    m = np.arange(minutes_of_day.start, minutes_of_day.stop + 1)
    p = _prices(day, m, symbol)
    o, c = p[:-1], p[1:]
    hi, lo = np.round(np.maximum(o, c) + 0.03, 2), np.round(np.minimum(o, c) - 0.03, 2)
    midnight_ms = int(dt.datetime.combine(day, dt.time(0, 0), tzinfo=ET).timestamp() * 1000)
    # Within a session the ET offset is constant (DST changes at 2 am on Sundays).
    offset_ms = int(dt.datetime.combine(day, dt.time(12, 0), tzinfo=ET).utcoffset().total_seconds() * 1000)
    midnight_offset = int(dt.datetime.combine(day, dt.time(0, 0), tzinfo=ET).utcoffset().total_seconds() * 1000)
    base = midnight_ms + (midnight_offset - offset_ms)
    out = []
    for k, mm in enumerate(m[:-1].tolist()):
        oo, cc = float(o[k]), float(c[k])
        out.append({"v": 100 + (mm % 60) * 10, "vw": round((oo + cc) / 2, 4), "o": oo, "c": cc,
                    "h": float(hi[k]), "l": float(lo[k]), "t": base + mm * 60_000, "n": 5 + mm % 7})
    return out


def minute_bar(day: dt.date, minute_of_day: int, symbol: str = "SPY") -> dict:
    return _minute_bars(day, range(minute_of_day, minute_of_day + 1), symbol)[0]


def session_minutes(session) -> range:
    """Regular-hours minutes of day (minutes after midnight ET) of a calendar Session."""
    o = session.open.hour * 60 + session.open.minute
    return range(o, o + session.minutes)


@lru_cache(maxsize=None)
def daily_bar(session, symbol: str = "SPY") -> dict:
    """The session's bar, aggregated from its regular-hours minute bars (as the provider does)."""
    import numpy as np

    mins = session_minutes(session)
    m = np.arange(mins.start, mins.stop + 1)
    p = _prices(session.date, m, symbol)
    o, c = p[:-1], p[1:]
    vol = 100 + (m[:-1] % 60) * 10
    vw = np.round((o + c) / 2, 4)
    midnight = dt.datetime.combine(session.date, dt.time(0, 0), tzinfo=ET)
    return {"v": int(vol.sum()), "vw": round(float((vw * vol).sum() / vol.sum()), 4), "o": float(o[0]),
            "c": float(c[-1]), "h": float(np.round(np.maximum(o, c) + 0.03, 2).max()),
            "l": float(np.round(np.minimum(o, c) - 0.03, 2).min()),
            "t": int(midnight.timestamp() * 1000), "n": int((5 + m[:-1] % 7).sum())}


def expected_spot(session, when: dt.datetime, symbol: str = "SPY") -> float:
    """What a snapshot at `when` must show: the opening minute's open at the bell, else the close of
    the minute bar that ended at `when`."""
    m = when.hour * 60 + when.minute
    first = session_minutes(session)[0]
    if m <= first:
        return minute_bar(session.date, first, symbol)["o"]
    return minute_bar(session.date, m - 1, symbol)["c"]


@dataclass
class Rule:
    """Answer matching requests with `respond` instead of data, `times` times (None = always)."""

    match: Callable[[dict], bool]
    respond: Callable[[dict], Response]
    times: int | None = 1


@dataclass
class Seen:
    path: str
    query: dict
    authorization: str | None
    span: str
    ticker: str


@dataclass
class FakeMassive:
    key: str
    page_size: int = 50_000
    known: set = field(default_factory=lambda: {"SPY", "QQQ", "I:VIX"})
    status: str = "OK"
    rules: list = field(default_factory=list)
    seen: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, server) -> "FakeMassive":
        server.expect_request(re.compile(r"^/.*")).respond_with_handler(self.handle)
        return self

    def bar_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith("/v2/aggs/")]

    def fail(self, match: Callable[[dict], bool] | None, respond: Callable[[dict], Response], times: int | None = 1):
        self.rules.append(Rule(match or (lambda r: True), respond, times))

    def handle(self, request: Request) -> Response:
        m = PATH_RE.match(request.path)
        info = {"path": request.path, "query": dict(request.args), "page": 1 + bool(request.args.get("cursor")),
                "span": m["span"] if m else "", "ticker": m["t"] if m else ""}
        chosen = None
        with self.lock:
            self.seen.append(Seen(request.path, dict(request.args), request.headers.get("Authorization"),
                                  info["span"], info["ticker"]))
            for rule in self.rules:
                if (rule.times is None or rule.times > 0) and rule.match(info):
                    if rule.times is not None:
                        rule.times -= 1
                    chosen = rule
                    break
        if chosen is not None:
            return chosen.respond(info)
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return _json({"status": "ERROR", "request_id": "r-auth", "error": "Unknown API Key"}, 401)
        if not m:
            return _json({"status": "NOT_FOUND", "request_id": "r-404", "message": "Not found"}, 404)
        return self._aggs(m, request)

    def results(self, ticker: str, span: str, a: dt.date, b: dt.date) -> list[dict]:
        if ticker not in self.known:
            return []
        sessions = _session_table()(a, b)
        if span == "day":
            return [dict(daily_bar(s, ticker)) for s in sessions]
        out = []
        for s in sessions:
            post_end = s.close.hour * 60 + s.close.minute + 240
            out.extend(_minute_bars(s.date, range(4 * 60, post_end), ticker))
        return out

    def _aggs(self, m, request: Request) -> Response:
        ticker, span = m["t"], m["span"]
        a, b = dt.date.fromisoformat(m["a"]), dt.date.fromisoformat(m["b"])
        cursor = request.args.get("cursor")
        offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        limit = min(int(request.args.get("limit", 5000)), self.page_size) if not cursor else self.page_size
        allr = self.results(ticker, span, a, b)
        page = allr[offset:offset + limit]
        body = {"ticker": ticker, "queryCount": len(page), "resultsCount": len(page), "adjusted": True,
                "status": self.status, "request_id": f"req-{len(self.seen)}", "count": len(page)}
        if page:
            body["results"] = page
        if offset + limit < len(allr):
            token = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            body["next_url"] = f"https://api.massive.com{request.path}?cursor={token}"
        return _json(body, 200)


def _json(body, status: int, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


# Canned faults, shaped like the real service's answers.
def too_many(retry_after: str | None = "0"):
    hdr = {"Retry-After": retry_after} if retry_after is not None else {}
    return lambda info: _json({"status": "ERROR", "request_id": "r-429",
                               "error": "You've exceeded the maximum requests per minute, please wait or upgrade "
                                        "your subscription to continue."}, 429, hdr)


def server_error(code: int = 500):
    return lambda info: Response("<html><body>Internal Server Error</body></html>", status=code,
                                 content_type="text/html")


def not_authorized():
    return lambda info: _json({"status": "NOT_AUTHORIZED", "request_id": "r-403",
                               "message": "Your plan doesn't include this data timeframe. Please upgrade your "
                                          "plan at https://massive.com/pricing"}, 403)


def malformed(text: str = '{"status":"OK","results":[{"t":16'):
    return lambda info: Response(text, status=200, content_type="application/json")


def missing_page():
    return lambda info: _json({"status": "NOT_FOUND", "request_id": "r-404", "message": "cursor not found"}, 404)


def truncated():
    body = json.dumps({"status": "OK", "resultsCount": 1, "results": [{"t": 1, "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}]})

    def respond(info):
        r = Response(body[:20], status=200, content_type="application/json")
        r.headers["Content-Length"] = str(len(body))
        return r
    return respond
