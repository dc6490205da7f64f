"""The Massive/Polygon source against a real HTTP server on 127.0.0.1 serving the API's shapes.

Client tests inject the sleep, clock and jitter, so no test sleeps; CLI tests run `gexhistory` as a
subprocess pointed at the server with MASSIVE_BASE_URL, as a user would.
"""

from __future__ import annotations

import datetime as dt
import json
import socket

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug import Response

import fake_massive as fm
from gexhistory.calendar import sessions_between
from gexhistory.errors import BadInput, WorkFailed
from gexhistory.sources.massive import (
    MINUTE_SESSIONS_PER_REQUEST,
    MassiveClient,
    MassiveSource,
    NoData,
    NotAuthorized,
    RateLimiter,
)
from helpers import rows, run_cli

KEY = "sk_live_TESTKEY_9f8e7d6c5b4a"  # a string that must never leave the Authorization header
DST_WINDOW = (dt.date(2025, 10, 27), dt.date(2025, 12, 5))  # DST ends Nov 2; Nov 28 closes at 13:00


@pytest.fixture
def server():
    from pytest_httpserver import HTTPServer

    s = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    s.start()
    yield s
    s.clear()
    s.stop()


@pytest.fixture
def fake(server):
    return fm.FakeMassive(KEY).install(server)


def base_url(server) -> str:
    return server.url_for("/").rstrip("/")


def make_source(server, **kw) -> tuple[MassiveSource, list[float]]:
    sleeps: list[float] = []
    opts = {"rate_per_min": 1e6, "max_tries": 4, "backoff": 2.0, "sleep": sleeps.append, "jitter": lambda: 0.25}
    opts.update(kw)
    return MassiveSource(MassiveClient(KEY, base_url(server), **opts)), sleeps


# -- rate limiter -----------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_rate_limiter_five_per_minute_with_injected_clock():
    clock = FakeClock()
    limiter = RateLimiter(5, clock, clock.sleep)
    sent = []
    for _ in range(12):
        limiter.acquire()
        sent.append(clock.now)
    assert sent == [0.0] * 5 + [60.0] * 5 + [120.0] * 2
    assert clock.sleeps == [60.0, 60.0]


def test_rate_limiter_fractional_rate_spaces_requests():
    clock = FakeClock()
    limiter = RateLimiter(0.5, clock, clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == [120.0, 120.0]


@settings(max_examples=60, deadline=None)
@given(rate=st.integers(1, 20), gaps=st.lists(st.floats(0, 40, allow_nan=False), min_size=1, max_size=60))
def test_rate_limiter_never_exceeds_rate_in_any_minute(rate, gaps):
    clock = FakeClock()
    limiter = RateLimiter(rate, clock, clock.sleep)
    sent = []
    for g in gaps:
        clock.now += g
        limiter.acquire()
        sent.append(clock.now)
    for i, t in enumerate(sent):
        assert sum(1 for u in sent[i:] if u < t + 60.0 - 1e-9) <= rate
    # and it waits no longer than needed: a request waits only when the window is full
    assert len(clock.sleeps) <= max(0, len(gaps) - rate)


def test_rate_limit_counts_every_page_and_retry(server, fake):
    fake.page_size = 80
    clock = FakeClock()
    src, _ = make_source(server, rate_per_min=5, clock=clock, sleep=clock.sleep)
    fake.fail(lambda i: i["page"] == 2, fm.server_error(503))
    src.daily_bars("SPY", dt.date(2024, 1, 2), dt.date(2025, 6, 30))  # 374 bars: 5 pages + 1 retry
    assert len(fake.bar_requests()) == 6
    # 0 s: page 1, page 2 (503); backoff 1.5 s; pages 2-4 at 1.5 s; page 5 waits until 60 s for the window
    assert clock.sleeps == [1.5, 58.5] and clock.now == 60.0


# -- daily bars, pagination, the key ----------------------------------------------------------------

def test_daily_bars_follow_next_url_with_key_in_header_only(server, fake):
    fake.page_size = 70  # 124 sessions: two pages
    src, _ = make_source(server)
    start, end = dt.date(2025, 1, 2), dt.date(2025, 6, 30)
    bars = src.daily_bars("SPY", start, end)
    sessions = sessions_between(start, end)
    assert bars.dates == [s.date for s in sessions] and bars.source == "polygon"
    assert np.allclose(bars.close, [fm.daily_bar(s)["c"] for s in sessions])
    assert np.allclose(bars.open, [fm.daily_bar(s)["o"] for s in sessions])
    assert np.allclose(bars.vwap, [fm.daily_bar(s)["vw"] for s in sessions])
    seen = fake.bar_requests()
    assert len(seen) == 2  # two pages
    assert seen[0].query == {"adjusted": "true", "sort": "asc", "limit": "50000"}
    assert "cursor" in seen[1].query  # page 2 came from next_url (api.massive.com), re-based onto the server
    assert all(s.authorization == f"Bearer {KEY}" for s in seen)
    assert all(KEY not in json.dumps(s.query) and "apiKey" not in s.query for s in seen)


def test_next_url_carrying_an_api_key_is_stripped(server, fake):
    fake.page_size = 60

    def page_with_key(info):
        resp = fake._aggs(fm.PATH_RE.match(info["path"]), _req(info))
        body = json.loads(resp.get_data())
        body["next_url"] += f"&apiKey={KEY}"
        return fm._json(body, 200)

    fake.fail(lambda i: i["page"] == 1, page_with_key)
    src, _ = make_source(server)
    src.daily_bars("SPY", dt.date(2025, 1, 2), dt.date(2025, 6, 30))
    assert all("apiKey" not in s.query for s in fake.bar_requests())


def _req(info):
    class R:
        path = info["path"]
        args = info["query"]
    return R


def test_daily_t_is_midnight_new_york_across_dst(server, fake):
    src, _ = make_source(server)
    bars = src.daily_bars("SPY", dt.date(2025, 3, 3), dt.date(2025, 3, 14))  # DST began Mar 9
    assert bars.dates == [s.date for s in sessions_between(dt.date(2025, 3, 3), dt.date(2025, 3, 14))]


def test_429_with_retry_after_then_success(server, fake):
    fake.fail(None, fm.too_many("7"))
    src, sleeps = make_source(server)
    bars = src.daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 6, 30))
    assert len(bars) == len(sessions_between(dt.date(2025, 6, 2), dt.date(2025, 6, 30)))
    assert sleeps == [7.0]  # the server's Retry-After, not our backoff
    assert len(fake.bar_requests()) == 2


def test_500_then_success_backs_off_with_injected_jitter(server, fake):
    fake.fail(None, fm.server_error(500), times=2)
    src, sleeps = make_source(server)
    src.daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 6, 30))
    assert sleeps == [2.0 * 0.75, 4.0 * 0.75]  # backoff * 2**(try-1) * (0.5 + jitter)
    assert len(fake.bar_requests()) == 3


@pytest.mark.parametrize("fault, reason", [
    (fm.server_error(502), "HTTP 502"),
    (fm.too_many("0"), "HTTP 429"),
    (fm.malformed(), "malformed JSON"),
    (fm.truncated(), "connection failed"),
])
def test_retries_are_bounded_then_one_clear_error(server, fake, fault, reason):
    fake.fail(None, fault, times=None)
    src, sleeps = make_source(server, max_tries=3)
    with pytest.raises(WorkFailed) as err:
        src.daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 6, 30))
    msg = str(err.value)
    assert "/v2/aggs/ticker/SPY/range/1/day/2025-06-02/2025-06-30" in msg and "3 tries" in msg and reason in msg
    assert KEY not in msg and "\n" not in msg
    assert len(fake.bar_requests()) == 3 and len(sleeps) == 2


def test_malformed_then_good_answer_is_used(server, fake):
    fake.fail(None, fm.malformed())
    src, _ = make_source(server)
    assert len(src.daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 6, 6))) == 5


def test_timeout_is_retried(server, fake):
    import time as _time

    def slow(info):
        _time.sleep(1.5)
        return fm._json({"status": "OK"}, 200)

    fake.fail(None, slow)
    src, sleeps = make_source(server, timeout=0.5)
    assert len(src.daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 6, 6))) == 5
    assert len(sleeps) == 1


def test_not_authorized_is_one_line_and_not_retried(server, fake):
    fake.fail(None, fm.not_authorized(), times=None)
    src, sleeps = make_source(server)
    with pytest.raises(NotAuthorized) as err:
        src.daily_bars("SPY", dt.date(2005, 1, 3), dt.date(2005, 6, 30))
    assert "NOT_AUTHORIZED" in str(err.value) and "plan" in str(err.value) and "\n" not in str(err.value)
    assert len(fake.bar_requests()) == 1 and sleeps == []


def test_unknown_ticker_is_explained(server, fake):
    src, _ = make_source(server)
    with pytest.raises(NoData) as err:
        src.daily_bars("ZZZZ", dt.date(2025, 6, 2), dt.date(2025, 6, 30))
    assert "unknown ticker" in str(err.value) and "ZZZZ" in str(err.value)


def test_missing_page_is_an_error_not_a_shorter_window(server, fake):
    fake.page_size = 30
    fake.fail(lambda i: i["page"] == 2, fm.missing_page(), times=None)
    src, _ = make_source(server)
    with pytest.raises(WorkFailed) as err:
        src.daily_bars("SPY", dt.date(2025, 1, 2), dt.date(2025, 6, 30))
    assert "page 2" in str(err.value) and "missing" in str(err.value)


def test_hole_in_daily_bars_names_the_date(server, fake):
    def holey(info):
        resp = fake._aggs(fm.PATH_RE.match(info["path"]), _req(info))
        body = json.loads(resp.get_data())
        body["results"] = [r for r in body["results"] if r["t"] != fm.daily_bar(sessions_between(
            dt.date(2025, 6, 11), dt.date(2025, 6, 11))[0])["t"]]
        body["resultsCount"] = body["queryCount"] = body["count"] = len(body["results"])
        return fm._json(body, 200)

    fake.fail(None, holey)
    src, _ = make_source(server)
    with pytest.raises(WorkFailed, match="no daily bar for SPY on 2025-06-11"):
        src.daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 6, 30))


# (case, the field spoiled in the 2025-06-11 bar, its value as raw JSON text) for provider answers out of any
# market's range: one line naming the path, the field and the bar, never a stored inf.
IMPLAUSIBLE = [
    ("huge close", "c", "1e308"),
    ("close below a hundredth of a cent", "c", "1e-300"),
    ("JSON Infinity open", "o", "Infinity"),
    ("JSON NaN high", "h", "NaN"),
    ("negative low", "l", "-5"),
    ("huge volume", "v", "1e15"),
    ("negative volume", "v", "-1"),
    ("vwap infinite", "vw", "Infinity"),
    ("time past 2100", "t", "5000000000000"),
]


@pytest.mark.parametrize("case, field, raw", IMPLAUSIBLE, ids=[c[0] for c in IMPLAUSIBLE])
def test_implausible_bars_are_refused(server, fake, case, field, raw):
    target = fm.daily_bar(sessions_between(dt.date(2025, 6, 11), dt.date(2025, 6, 11))[0])["t"]

    def spoiled(info):
        resp = fake._aggs(fm.PATH_RE.match(info["path"]), _req(info))
        body = json.loads(resp.get_data())
        for r in body["results"]:
            if r["t"] == target:
                r[field] = "@@"
        text = json.dumps(body).replace('"@@"', raw)  # NaN and Infinity as Python's json writes and reads them
        return Response(text, 200, content_type="application/json")

    fake.fail(None, spoiled)
    src, _ = make_source(server)
    with pytest.raises(WorkFailed) as err:
        src.daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 6, 30))
    msg = str(err.value)
    assert msg.startswith("massive: /v2/aggs/ticker/SPY/range/1/day/") and "\n" not in msg
    assert f"implausible bar: {field}=" in msg and "in bar 8 " in msg, msg


def test_delayed_status_is_data(server, fake):
    fake.status = "DELAYED"
    src, _ = make_source(server)
    assert len(src.daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 6, 6))) == 5


def test_connection_refused_is_bounded(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    src = MassiveSource(MassiveClient(KEY, f"http://127.0.0.1:{port}", max_tries=3, sleep=sleeps.append,
                                      jitter=lambda: 0.0))
    with pytest.raises(WorkFailed, match="3 tries.*connection failed"):
        src.daily_bars("SPY", dt.date(2025, 6, 2), dt.date(2025, 6, 6))
    assert sleeps == [1.0, 2.0]


def test_bad_key_or_base_url_is_bad_input():
    with pytest.raises(BadInput) as err:
        MassiveClient("abc\ndef-secret", "https://api.massive.com")
    assert "secret" not in str(err.value)
    with pytest.raises(BadInput):
        MassiveClient(KEY, "ftp://example")


# -- minute bars ------------------------------------------------------------------------------------

def test_minute_bars_regular_hours_only_in_new_york_time(server, fake):
    src, _ = make_source(server)
    sessions = sessions_between(*DST_WINDOW)
    mb = src.minute_bars("SPY", sessions)
    for i, s in enumerate(sessions):
        have = np.flatnonzero(~np.isnan(mb.close[i]))
        assert have.size == s.minutes  # 390, or 210 on Nov 28; no pre/post-market minute
        first = fm.session_minutes(s)[0]
        assert mb.open[i, 0] == fm.minute_bar(s.date, first)["o"]
        assert mb.close[i, s.minutes - 1] == fm.minute_bar(s.date, first + s.minutes - 1)["c"]
    early = [s for s in sessions if s.early_close]
    assert [s.date for s in early] == [dt.date(2025, 11, 28)]
    times = [s.snapshot_times() for s in sessions]
    spots = mb.spots_at(times)
    for i, s in enumerate(sessions):
        assert list(spots[i]) == [fm.expected_spot(s, t) for t in times[i]]


def test_minute_requests_fit_the_page_limit(server, fake):
    src, _ = make_source(server)
    sessions = sessions_between(dt.date(2025, 1, 2), dt.date(2025, 6, 30))
    src.minute_bars("SPY", sessions)
    reqs = fake.bar_requests()
    assert len(reqs) == -(-len(sessions) // MINUTE_SESSIONS_PER_REQUEST)
    for r in reqs:
        a, b = r.path.rsplit("/", 2)[-2:]
        n = len(sessions_between(dt.date.fromisoformat(a), dt.date.fromisoformat(b)))
        assert n <= MINUTE_SESSIONS_PER_REQUEST and n * 960 <= 50_000
    assert all("cursor" not in r.query for r in reqs)  # each chunk fit in one page


def test_minutes_not_in_plan_leave_rows_empty_with_a_note(server, fake):
    fake.fail(lambda i: i["span"] == "minute", fm.not_authorized(), times=None)
    src, _ = make_source(server)
    sessions = sessions_between(dt.date(2025, 6, 2), dt.date(2025, 6, 6))
    mb = src.minute_bars("SPY", sessions)
    assert np.isnan(mb.close).all()
    assert any("minute bars" in n and "NOT_AUTHORIZED" in n for n in src.notes)


def test_vix_bars_or_none_with_a_note(server, fake):
    src, _ = make_source(server)
    vix = src.vix_bars(dt.date(2025, 6, 2), dt.date(2025, 6, 6))
    assert vix.symbol == "I:VIX" and len(vix) == 5
    assert fake.bar_requests()[-1].ticker == "I:VIX"
    fake.fail(lambda i: i["ticker"] == "I:VIX", fm.not_authorized(), times=None)
    assert src.vix_bars(dt.date(2025, 6, 2), dt.date(2025, 6, 6)) is None
    assert any("I:VIX" in n and "NOT_AUTHORIZED" in n for n in src.notes)


def test_other_sources_have_no_vix():
    from gexhistory.sources.synthetic import SyntheticMarket

    assert SyntheticMarket(1).vix_bars(dt.date(2025, 6, 2), dt.date(2025, 6, 6)) is None


# -- the backfill through the CLI -------------------------------------------------------------------

def cli_env(server, **extra) -> dict:
    env = {"POLYGON_API_KEY": KEY, "MASSIVE_BASE_URL": base_url(server), "TZ": "America/Los_Angeles",
           "MASSIVE_BACKOFF_SECONDS": "0", "MASSIVE_MAX_TRIES": "3"}
    env.update(extra)
    return env


def _check_spots(db: str, sessions) -> int:
    by_date = {s.date.isoformat(): s for s in sessions}
    got = rows(db, "SELECT date, timestamp, spot_price, data_source FROM gamma_history WHERE symbol='SPY'")
    for d, ts, spot, src in got:
        s = by_date[d]
        when = dt.datetime.fromisoformat(ts).replace(tzinfo=fm.ET)
        assert spot == fm.expected_spot(s, when), (ts, spot)
        assert src == "polygon"
    return len(got)


def test_done_means_backfill_30_days_from_the_provider(server, fake, tmp_path, db_url):
    out = run_cli(["backfill", "--days", "30", "--db", db_url, "--json"], tmp_path, env=cli_env(server))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["data_source"] == "polygon" and summary["synthetic"] is False
    a, b = dt.date.fromisoformat(summary["start"]), dt.date.fromisoformat(summary["end"])
    sessions = sessions_between(a, b)
    assert _check_spots(db_url, sessions) == 4 * len(sessions)
    for table in ("gex_history", "gamma_history", "gamma_daily_summary"):
        assert {r[0] for r in rows(db_url, f"SELECT DISTINCT data_source FROM {table}")} == {"polygon"}
    n_min = rows(db_url, "SELECT COUNT(*) FROM price_bars WHERE timeframe='1m' AND data_source='polygon'")[0][0]
    # The window's minutes and the RSI warm-up sessions before it (signals), in the same request.
    from gexhistory.calendar import sessions_before
    from gexhistory.engine.rsi import WARMUP_SESSIONS

    warm = sessions_before(sessions[0].date, WARMUP_SESSIONS)
    assert n_min == sum(s.minutes for s in warm + sessions)
    first_requests = len(fake.bar_requests())
    assert first_requests == 3  # one daily request, one minute chunk (window + RSI warm-up), one I:VIX

    again = run_cli(["backfill", "--days", "30", "--db", db_url], tmp_path, env=cli_env(server))
    assert again.returncode == 0 and "nothing to do" in again.stdout
    forced = run_cli(["backfill", "--days", "30", "--db", db_url, "--force", "--json"], tmp_path, env=cli_env(server))
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["totals"]["gex_history"]["replaced"] == 4 * len(sessions)
    assert len(fake.bar_requests()) == first_requests  # the reruns read every bar from price_bars
    assert _check_spots(db_url, sessions) == 4 * len(sessions)
    assert rows(db_url, "SELECT COUNT(*) FROM price_bars WHERE timeframe='1m'")[0][0] == n_min  # no duplicates
    assert "SYNTHETIC" not in out.stdout + again.stdout + forced.stdout


def test_window_with_dst_change_and_early_close(server, fake, tmp_path):
    db = str(tmp_path / "g.db")
    a, b = DST_WINDOW
    out = run_cli(["backfill", "--start", a.isoformat(), "--end", b.isoformat(), "--db", db, "--quiet"],
                  tmp_path, env=cli_env(server))
    assert out.returncode == 0, out.stderr
    sessions = sessions_between(a, b)
    assert _check_spots(db, sessions) == 4 * len(sessions)
    assert [r[0] for r in rows(db, "SELECT time_of_day FROM gamma_history WHERE date='2025-11-28' ORDER BY timestamp")] \
        == ["09:30", "11:00", "12:00", "13:00"]
    # minute bars stored under their ET start: 13:00 close means the last bar starts 12:59
    assert rows(db, "SELECT MAX(timestamp), COUNT(*) FROM price_bars WHERE timeframe='1m' AND timestamp LIKE '2025-11-28%'")[0] \
        == ("2025-11-28 12:59:00", 210)
    assert rows(db, "SELECT MIN(timestamp) FROM price_bars WHERE timeframe='1m' AND timestamp LIKE '2025-11-03%'")[0][0] \
        == "2025-11-03 09:30:00"


def test_plan_without_minutes_prices_open_and_close_only(server, fake, tmp_path, db_url):
    fake.fail(lambda i: i["span"] == "minute", fm.not_authorized(), times=None)
    a, b = dt.date(2025, 11, 24), dt.date(2025, 12, 5)
    out = run_cli(["backfill", "--start", a.isoformat(), "--end", b.isoformat(), "--db", db_url, "--json"],
                  tmp_path, env=cli_env(server))
    assert out.returncode == 0, out.stderr
    notes = " ".join(json.loads(out.stdout)["notes"])
    assert "NOT_AUTHORIZED" in notes and "only the open (09:30) and the close snapshots" in notes
    for s in sessions_between(a, b):
        got = rows(db_url, "SELECT time_of_day, spot_price FROM gamma_history WHERE date=:d ORDER BY timestamp",
                   d=s.date.isoformat())
        close = "13:00" if s.early_close else "16:00"
        day = fm.daily_bar(s)
        assert got == [("09:30", day["o"]), (close, day["c"])]
        assert rows(db_url, "SELECT snapshots_count, open_price, close_price FROM gamma_daily_summary WHERE date=:d",
                    d=s.date.isoformat()) == [(2, day["o"], day["c"])]


def test_no_key_means_loud_synthetic_and_polygon_needs_a_key(tmp_path):
    out = run_cli(["backfill", "--days", "10", "--db", str(tmp_path / "a.db")], tmp_path)
    assert out.returncode == 0 and "SYNTHETIC DATA" in out.stdout
    forced = run_cli(["backfill", "--days", "10", "--source", "polygon", "--db", str(tmp_path / "b.db")], tmp_path)
    assert forced.returncode == 2 and "POLYGON_API_KEY" in forced.stderr
    assert not (tmp_path / "b.db").exists()


def test_key_in_dotenv_selects_the_provider(server, fake, tmp_path):
    (tmp_path / ".env").write_text(f"MASSIVE_API_KEY={KEY}\nMASSIVE_BASE_URL={base_url(server)}\n")
    out = run_cli(["backfill", "--days", "10", "--json", "--rate", "100"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["data_source"] == "polygon"
    assert fake.bar_requests() and all(s.authorization == f"Bearer {KEY}" for s in fake.bar_requests())


@pytest.mark.parametrize("args, needle", [
    (["--rate", "0"], "--rate"),
    (["--rate", "-3"], "--rate"),
    (["--symbol", "SP Y"], "malformed symbol"),
])
def test_bad_provider_options_exit_2(server, fake, tmp_path, args, needle):
    out = run_cli(["backfill", "--days", "10", *args], tmp_path, env=cli_env(server))
    assert out.returncode == 2 and needle in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert fake.bar_requests() == [] and not (tmp_path / "gex_copilot.db").exists()


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


ERROR_CASES = {
    "429 exhausted": (lambda f: f.fail(None, fm.too_many("0"), times=None), "HTTP 429"),
    "5xx exhausted": (lambda f: f.fail(None, fm.server_error(503), times=None), "HTTP 503"),
    "NOT_AUTHORIZED": (lambda f: f.fail(None, fm.not_authorized(), times=None), "NOT_AUTHORIZED"),
    "unknown ticker": (lambda f: f.known.discard("SPY"), "unknown ticker"),
    "malformed JSON": (lambda f: f.fail(None, fm.malformed(f'{{"status":"OK","error":"{KEY}"'), times=None),
                       "malformed JSON"),
    "missing page": (lambda f: (setattr(f, "page_size", 50), f.fail(lambda i: i["page"] == 2, fm.missing_page(),
                                                                      times=None)), "missing"),
    "provider echoes the key": (lambda f: f.fail(None, lambda i: fm._json(
        {"status": "ERROR", "request_id": "x", "error": f"bad request for apiKey={KEY} ({KEY})"}, 400), times=None),
        "HTTP 400"),
    "connection refused": (None, "connection failed"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_every_error_path_exits_1_writes_nothing_and_never_shows_the_key(server, fake, tmp_path, case):
    setup, needle = ERROR_CASES[case]
    env = cli_env(server)
    if setup is None:
        env["MASSIVE_BASE_URL"] = _refused_url()
    else:
        setup(fake)
    db = str(tmp_path / "g.db")
    out = run_cli(["backfill", "--days", "30", "--db", db], tmp_path, env=env)
    assert out.returncode == 1, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: massive:") and needle in lines[0], out.stderr
    assert KEY not in out.stdout and KEY not in out.stderr
    assert "SYNTHETIC" not in out.stdout  # never a silent fall-back
    for table in ("gex_history", "gamma_history", "gamma_daily_summary", "regime_signals", "price_bars"):
        assert rows(db, f"SELECT COUNT(*) FROM {table}") == [(0,)]
    assert rows(db, "SELECT status FROM backfill_runs") == [("failed",)]
    assert KEY not in _dump_database(db)
    assert all(KEY not in json.dumps(s.query) for s in fake.seen)


def _dump_database(db: str) -> str:
    from gexhistory.store.schema import metadata

    return "\n".join(repr(rows(db, f"SELECT * FROM {t}")) for t in metadata.tables)


def test_parallel_symbols_use_the_cache_and_report_notes(server, fake, tmp_path):
    fake.fail(lambda i: i["span"] == "minute" and i["ticker"] == "QQQ", fm.not_authorized(), times=None)
    db = str(tmp_path / "g.db")
    a, b = "2025-11-17", "2025-11-28"
    args = ["backfill", "--symbols", "SPY,QQQ", "--jobs", "2", "--start", a, "--end", b, "--db", db, "--json",
            "--rate", "1000"]
    out = run_cli(args, tmp_path, env=cli_env(server))
    assert out.returncode == 0, out.stderr
    notes = " ".join(json.loads(out.stdout)["notes"])
    assert "no minute bars for QQQ" in notes and "NOT_AUTHORIZED" in notes and "for SPY" not in notes
    sessions = sessions_between(dt.date.fromisoformat(a), dt.date.fromisoformat(b))
    assert _check_spots(db, sessions) == 4 * len(sessions)
    assert rows(db, "SELECT COUNT(*) FROM gamma_history WHERE symbol='QQQ'")[0][0] == 2 * len(sessions)
    n = len(fake.bar_requests())
    forced = run_cli([*args, "--force"], tmp_path, env=cli_env(server))
    assert forced.returncode == 0, forced.stderr
    # SPY's bars all come from price_bars; QQQ has no minute bars to hold, so only its minutes are asked again
    again = fake.bar_requests()[n:]
    assert [(r.ticker, r.span) for r in again] == [("QQQ", "minute")]
