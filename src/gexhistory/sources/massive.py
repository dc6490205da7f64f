"""Massive (formerly Polygon.io) aggregates: a small HTTP client and the PriceSource built on it.

The key travels only in the `Authorization: Bearer` header, and only to the configured base URL:
`next_url` pages are re-based onto it, any `apiKey` query parameter is dropped, and every message this
module writes names the endpoint's path (never a full URL) and passes through `_clean`, which redacts
the key. Every request, page and retry alike, waits for the client-side rate limiter first.

Failures: 429 (honouring Retry-After), 5xx, timeouts, connection errors, malformed JSON and truncated
bodies are retried with jittered exponential backoff up to `max_tries`, then end in one ProviderError
naming the endpoint, the last failure and the number of tries. Plan errors (NOT_AUTHORIZED), a rejected
key, a page missing mid-pagination (404) and unknown tickers are not retried: a shorter window is never
returned as if it were complete.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import re
import time
from collections import deque
from email.utils import parsedate_to_datetime
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from gexhistory.calendar import ET, Session, sessions_between
from gexhistory.config import COUNT_MAX, PRICE_MAX, PRICE_MIN, env_float
from gexhistory.errors import BadInput, ProviderError
from gexhistory.sources import labels
from gexhistory.sources.base import (
    MINUTES_PER_SESSION,
    VIX,
    DailyBars,
    MinuteBars,
    PriceSource,
)
from gexhistory.version import __version__
from gexhistory.words import first_of, plural

LABEL = labels.POLYGON  # data_source of every row priced from Massive/Polygon bars
DEFAULT_BASE_URL = "https://api.massive.com"
DEFAULT_RATE_PER_MIN = 5.0  # the free plan's limit
DEFAULT_MAX_TRIES = 5
DEFAULT_BACKOFF_SECONDS = 2.0
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 300.0  # a longer wait is reported, not slept through
PAGE_LIMIT = 50_000
MAX_PAGES = 1_000
# Minute responses include pre- and post-market (04:00-20:00, ~960 bars a day): 45 sessions is
# about 43,200 bars, one page of 50,000.
MINUTE_SESSIONS_PER_REQUEST = 45
KEY_RE = re.compile(r"^[A-Za-z0-9_\-.~+/=]{4,200}$")
OK_STATUSES = ("OK", "DELAYED")


class NotAuthorized(ProviderError):
    """The plan does not include the data or range asked for."""


class NoData(ProviderError):
    """The provider answered, with no bars: an unknown ticker, or no trading in the window."""


class _Retry(Exception):
    """One failed try that may succeed when repeated; `wait` overrides the backoff (Retry-After)."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


def configured_rate() -> float:
    """Requests per minute from MASSIVE_RATE_PER_MIN, else the free plan's 5."""
    return env_float("MASSIVE_RATE_PER_MIN", DEFAULT_RATE_PER_MIN, 1e-3, 1e6)


class RateLimiter:
    """At most `per_minute` requests in any sliding window (60 s for whole numbers; a fractional rate
    such as 0.5 means one request per 120 s). `clock` and `sleep` are injectable for tests."""

    def __init__(self, per_minute: float = DEFAULT_RATE_PER_MIN, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not per_minute > 0 or math.isinf(per_minute):
            raise BadInput(f"the request rate must be a positive number of requests per minute, got {per_minute}")
        self.capacity = max(1, int(per_minute))
        self.window = 60.0 * self.capacity / per_minute
        self.clock = clock
        self.sleep = sleep
        self._sent: deque[float] = deque()
        self.waited = 0.0

    def acquire(self) -> None:
        now = self.clock()
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()
        if len(self._sent) >= self.capacity:
            oldest = self._sent.popleft()  # we wait exactly until its window has passed
            wait = oldest + self.window - now
            if wait > 0:
                self.sleep(wait)
                self.waited += wait
            now = max(self.clock(), oldest + self.window)
        self._sent.append(now)


class MassiveClient:
    """GET JSON from the aggregates API with rate limiting, retries and pagination."""

    def __init__(self, key: str, base_url: str = DEFAULT_BASE_URL, *, rate_per_min: float = DEFAULT_RATE_PER_MIN,
                 max_tries: int = DEFAULT_MAX_TRIES, backoff: float = DEFAULT_BACKOFF_SECONDS,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, jitter: Callable[[], float] = random.random):
        if not KEY_RE.match(key or ""):
            # Never echo the value: it may be a real key pasted with a stray character.
            raise BadInput("the API key (POLYGON_API_KEY / MASSIVE_API_KEY) has characters that cannot be sent in a header")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or "@" in parts.netloc:
            raise BadInput("MASSIVE_BASE_URL must look like https://host[:port]")
        self._key = key
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.limiter = RateLimiter(rate_per_min, clock, sleep)
        self.max_tries = max(1, int(max_tries))
        self.backoff = float(backoff)
        self.timeout = float(timeout)
        self.sleep = sleep
        self.jitter = jitter
        self.requests = 0
        self._http = None

    def _client(self):
        if self._http is None:
            import httpx  # lazy: a rerun answered from price_bars never opens a connection

            self._http = httpx.Client(
                timeout=self.timeout, follow_redirects=False,
                headers={"Authorization": f"Bearer {self._key}", "Accept": "application/json",
                         "User-Agent": f"gexhistory/{__version__}"},
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _clean(self, text: str, limit: int = 200) -> str:
        """One line, no key, no apiKey parameter, bounded length: safe to print and to store."""
        text = str(text)
        if self._key:
            text = text.replace(self._key, "***")
        text = re.sub(r"(?i)(api_?key=)[^&\s\"']*", r"\1***", text)
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def _delay(self, attempt: int) -> float:
        # Exponential in the attempt, scaled by a jitter factor in [0.5, 1.5) so clients desynchronise.
        return min(MAX_BACKOFF_SECONDS, self.backoff * 2 ** (attempt - 1) * (0.5 + self.jitter()))

    def aggregates(self, path: str, params: dict[str, str]) -> list[dict]:
        """Every result of `path`, following next_url to the last page."""
        url, query, page = self.base + path, dict(params), 1
        out: list[dict] = []
        while True:
            body = self._get(url, query, path, page)
            results = body.get("results") or []
            out.extend(results)
            nxt = body.get("next_url")
            if not nxt:
                return out
            if page >= MAX_PAGES:
                raise ProviderError(f"massive: {path} returned more than {MAX_PAGES} pages; giving up")
            url, query = self._rebase(nxt, path)
            page += 1

    def _rebase(self, next_url: str, path: str) -> tuple[str, dict]:
        """next_url on the configured host (the key never goes anywhere else), without any apiKey."""
        if not isinstance(next_url, str):
            raise ProviderError(f"massive: {path} returned a malformed next_url")
        parts = urlsplit(next_url)
        if not parts.path.startswith("/"):
            raise ProviderError(f"massive: {path} returned a malformed next_url")
        query = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in ("apikey", "api_key")}
        return f"{self.base}{parts.path}", query

    def _get(self, url: str, query: dict, path: str, page: int) -> dict:
        where = path if page == 1 else f"{path} (page {page})"
        last = "no attempt"
        for attempt in range(1, self.max_tries + 1):
            self.limiter.acquire()
            try:
                return self._try(url, query, path, page)
            except _Retry as r:
                last = r.reason
                if attempt == self.max_tries:
                    break
                wait = r.wait if r.wait is not None else self._delay(attempt)
                self.sleep(wait)
        raise ProviderError(f"massive: {where} failed after {plural(self.max_tries, 'try', 'tries')}; last: {last}")

    def _try(self, url: str, query: dict, path: str, page: int) -> dict:
        import httpx  # lazy: see _client

        self.requests += 1
        try:
            resp = self._client().get(url, params=query or None)
        except httpx.TimeoutException:
            raise _Retry(f"timed out after {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise _Retry(self._clean(f"connection failed ({type(exc).__name__}: {exc})")) from None
        code = resp.status_code
        if code == 429:
            wait = _retry_after(resp.headers.get("Retry-After"))
            if wait is not None and wait > MAX_RETRY_AFTER_SECONDS:
                raise ProviderError(f"massive: {path} is rate limited (HTTP 429) and the provider asks to wait "
                                 f"{wait:.0f}s; try again later or lower --rate")
            raise _Retry("HTTP 429 (rate limited)", wait)
        if code >= 500:
            raise _Retry(f"HTTP {code}")
        body = self._json(resp, path)
        status = str(body.get("status", "")).upper() if isinstance(body, dict) else ""
        message = self._clean(body.get("message") or body.get("error") or "") if isinstance(body, dict) else ""
        if status == "NOT_AUTHORIZED" or (code == 403 and status in ("", "ERROR")):
            raise NotAuthorized(f"massive: your plan does not include {path} (NOT_AUTHORIZED: "
                                f"{message or 'no message'})")
        if code == 401:
            raise ProviderError(f"massive: the API key was rejected (HTTP 401: {message or 'unauthorized'}); "
                             "check POLYGON_API_KEY / MASSIVE_API_KEY")
        if code == 404:
            if page > 1:
                raise ProviderError(f"massive: page {page} of {path} is missing (HTTP 404 on next_url); "
                                 "the window would be incomplete, so nothing was used")
            raise ProviderError(f"massive: {path} not found (HTTP 404{': ' + message if message else ''})")
        if code != 200:
            raise ProviderError(f"massive: {path} answered HTTP {code}{': ' + message if message else ''}")
        if status not in OK_STATUSES:
            raise ProviderError(f"massive: {path} answered status {self._clean(status or 'missing', 40)}"
                             f"{': ' + message if message else ''}")
        results = body.get("results", [])
        if results is None:
            results = []
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise _Retry("malformed JSON (results is not a list of bars)")
        count = body.get("resultsCount")
        if isinstance(count, int) and count != len(results):
            raise _Retry(f"truncated response (resultsCount {count}, {plural(len(results), 'bar')} received)")
        return body

    def _json(self, resp, path: str) -> dict:
        try:
            body = json.loads(resp.content)
        except ValueError:
            if resp.status_code == 200:
                raise _Retry("malformed JSON") from None
            return {}
        if not isinstance(body, dict):
            if resp.status_code == 200:
                raise _Retry("malformed JSON (not an object)")
            return {}
        return body


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _bar_arrays(results: list[dict], path: str, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Column arrays of the bars' fields; a bar without a required numeric field is malformed."""
    out = {}
    for f in fields:
        try:
            col = np.array([r[f] for r in results], dtype=float)
        except (KeyError, TypeError, ValueError):
            raise ProviderError(f"massive: {path} returned a malformed bar (field {f!r} missing or not a number)") from None
        out[f] = col
    for f in ("vw", "n"):  # optional extras: absent or non-numeric is unknown, not an error
        out[f] = np.array([_optional_number(r.get(f)) for r in results], dtype=float)
    if not np.isfinite(out["t"]).all() or (np.isfinite(out["c"]) & (out["c"] > 0)).sum() != len(results):
        raise ProviderError(f"massive: {path} returned a malformed bar (bad time or close)")
    _check_plausible(out, path, fields)
    return out


# Bar times from 1970 to 2100 in ms: anything else is not a bar of this provider's history.
T_MAX_MS = 4_102_444_800_000


def _check_plausible(cols: dict[str, np.ndarray], path: str, fields: tuple[str, ...]) -> None:
    """Every bar's time, prices and volume within any market's range (config.PRICE_MIN..PRICE_MAX,
    0..COUNT_MAX), whole columns at once; the first bar outside is named. NaN (JSON's NaN is accepted
    by the parser) is bad in a required field and unknown in an optional one (vw, n)."""
    t = cols["t"]
    bad = {"t": ~((t >= 0) & (t < T_MAX_MS))}
    for f, lo, hi in (("o", PRICE_MIN, PRICE_MAX), ("h", PRICE_MIN, PRICE_MAX), ("l", PRICE_MIN, PRICE_MAX),
                      ("c", PRICE_MIN, PRICE_MAX), ("vw", PRICE_MIN, PRICE_MAX), ("v", 0, COUNT_MAX),
                      ("n", 0, COUNT_MAX)):
        if f in cols:
            x = cols[f]
            outside = ~((x >= lo) & (x < hi))
            bad[f] = outside if f in fields else outside & ~np.isnan(x)
    for f, mask in bad.items():
        if mask.any():
            i = int(np.argmax(mask))
            raise ProviderError(f"massive: {path} returned an implausible bar: {f}={cols[f][i]!r} in bar {i + 1} "
                                f"(prices must be from {PRICE_MIN:g} to below {PRICE_MAX:g}, volumes from 0 to below "
                                f"{COUNT_MAX:g})")


def _optional_number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


class MassiveSource(PriceSource):
    """PriceSource over the Massive/Polygon aggregates API; rows it prices are labelled 'polygon'."""

    name = LABEL
    cache_bars = True  # bars are fetched once and then read from price_bars

    def __init__(self, client: MassiveClient):
        self.client = client
        super().__init__()

    @classmethod
    def from_env(cls, key: str, rate: float | None = None) -> "MassiveSource":
        base = os.environ.get("MASSIVE_BASE_URL") or DEFAULT_BASE_URL
        if rate is None:
            rate = configured_rate()
        elif not (0 < rate <= 1e6):
            raise BadInput(f"--rate must be a positive number of requests per minute, got {rate:g}")
        client = MassiveClient(
            key, base, rate_per_min=rate,
            max_tries=int(env_float("MASSIVE_MAX_TRIES", DEFAULT_MAX_TRIES, 1, 100)),
            backoff=env_float("MASSIVE_BACKOFF_SECONDS", DEFAULT_BACKOFF_SECONDS, 0, 600),
            timeout=env_float("MASSIVE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS, 0.1, 600),
        )
        return cls(client)

    @staticmethod
    def _path(symbol: str, span: str, start: dt.date, end: dt.date) -> str:
        return f"/v2/aggs/ticker/{symbol}/range/1/{span}/{start.isoformat()}/{end.isoformat()}"

    def _fetch(self, symbol: str, span: str, start: dt.date, end: dt.date) -> tuple[str, list[dict]]:
        path = self._path(symbol, span, start, end)
        params = {"adjusted": "true", "sort": "asc", "limit": str(PAGE_LIMIT)}
        return path, self.client.aggregates(path, params)

    def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> DailyBars:
        path, results = self._fetch(symbol, "day", start, end)
        sessions = sessions_between(start, end)
        if not results:
            raise NoData(f"massive: no daily bars for {symbol} from {start} to {end}: unknown ticker, "
                         "or it did not trade in that window")
        a = _bar_arrays(results, path, ("t", "o", "h", "l", "c", "v"))
        # Daily t is midnight America/New_York: the ET date is the session, whatever the machine's zone.
        dates = [dt.datetime.fromtimestamp(ms / 1000.0, ET).date() for ms in a["t"].tolist()]
        wanted = {s.date for s in sessions}
        keep, seen = [], set()
        for i, d in enumerate(dates):
            if d in wanted and d not in seen:  # bars on non-sessions cannot be priced into a session
                keep.append(i)
                seen.add(d)
        if not keep:
            raise NoData(f"massive: no daily bars for {symbol} on NYSE sessions from {start} to {end}")
        first = dates[keep[0]]
        missing = [s.date for s in sessions if s.date >= first and s.date not in seen]
        if missing:
            raise ProviderError(f"massive: no daily bar for {symbol} on {first_of(missing, 1)} (the provider's "
                                f"answer for {start}..{end} has a hole); nothing was written for this window")
        k = np.array(keep)
        return DailyBars(symbol, [dates[i] for i in keep], a["o"][k], a["h"][k], a["l"][k], a["c"][k], a["v"][k],
                         self.name, vwap=a["vw"][k], trades=a["n"][k])

    def minute_bars(self, symbol: str, sessions: list[Session]) -> MinuteBars:
        n = len(sessions)
        arrays = {f: np.full((n, MINUTES_PER_SESSION), np.nan) for f in ("o", "h", "l", "c", "v")}
        row_of = {s.date: i for i, s in enumerate(sessions)}
        for chunk in _chunks(sessions):
            try:
                path, results = self._fetch(symbol, "minute", chunk[0].date, chunk[-1].date)
            except NotAuthorized:
                self.notes.append(f"polygon: the plan does not include minute bars for {symbol} from {chunk[0].date} "
                                  f"to {chunk[-1].date} (NOT_AUTHORIZED)")
                continue
            if results:
                _place_minutes(results, path, chunk, row_of, arrays)
        return MinuteBars(symbol, list(sessions), arrays["o"], arrays["c"], arrays["v"], self.name,
                          high=arrays["h"], low=arrays["l"])

    def vix_bars(self, start: dt.date, end: dt.date) -> DailyBars | None:
        try:
            return self.daily_bars(VIX, start, end)
        except NotAuthorized:
            self.notes.append("polygon: the plan does not include I:VIX (NOT_AUTHORIZED); VIX fields use the "
                              "labelled IV proxy")
        except NoData:
            self.notes.append(f"polygon: no I:VIX bars from {start} to {end}; VIX fields use the labelled IV proxy")
        return None


def _chunks(sessions: list[Session]) -> list[list[Session]]:
    """Runs of the requested sessions whose calendar span holds at most MINUTE_SESSIONS_PER_REQUEST
    sessions, so one request's ~960 bars a day fit in one 50,000-bar page."""
    out: list[list[Session]] = []
    if not sessions:
        return out
    span = {s.date: i for i, s in enumerate(sessions_between(sessions[0].date, sessions[-1].date))}
    cur = [sessions[0]]
    for s in sessions[1:]:
        if span[s.date] - span[cur[0].date] < MINUTE_SESSIONS_PER_REQUEST:
            cur.append(s)
        else:
            out.append(cur)
            cur = [s]
    out.append(cur)
    return out


def _place_minutes(results: list[dict], path: str, chunk: list[Session], row_of: dict, arrays: dict) -> None:
    """Put each regular-hours bar of a response in its (session, minute since the open) cell.

    Minute t is the bar's start in UTC ms; comparing it with each session's open and close instants
    (tz-aware ET, early closes included) keeps pre-/post-market out without any local-time arithmetic.
    """
    a = _bar_arrays(results, path, ("t", "o", "h", "l", "c", "v"))
    t = a["t"].astype(np.int64)
    rows = np.array([row_of[s.date] for s in chunk])
    opens = np.array([int(s.open.timestamp() * 1000) for s in chunk], dtype=np.int64)
    closes = np.array([int(s.close.timestamp() * 1000) for s in chunk], dtype=np.int64)
    k = np.searchsorted(opens, t, side="right") - 1
    ok = k >= 0
    kk = np.where(ok, k, 0)
    ok &= t < closes[kk]
    col = (t - opens[kk]) // 60_000
    ok &= (col >= 0) & (col < MINUTES_PER_SESSION)
    r, c = rows[kk[ok]], col[ok]
    for f in ("o", "h", "l", "c", "v"):
        arrays[f][r, c] = a[f][ok]
