"""/gex/profile and /api/gex/profile: the page mechanics (cards, charts, replay without page loads,
strike range, expiry buckets, links from /gex/history) in headless Chromium.

The GEX-by-strike data side (gexhistory.pipeline.profile) is built on another branch; until it is merged
the server runs in this process with tests/fake_profile.py in its place, which fills the API's shape
from the stored rows. The cards and the replay steps are checked against the database; the strike
values themselves are the stand-in's and are not checked here.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import fake_profile
import pages_data as pdata
from gexhistory.web import format as fmt
from gexhistory.web import profile as web_profile
from helpers import REPO, rows

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
ARTIFACTS = REPO / "test-artifacts"

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists() and not os.environ.get("GEXHISTORY_REQUIRE_BROWSER"):
    pytest.skip(f"{CHROMIUM} is not installed (set GEXHISTORY_REQUIRE_BROWSER=1 to make this a failure)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from gexhistory.web.app import create_app

    db = str(tmp_path_factory.mktemp("profile") / "gex_copilot.db")
    pdata.build(db)
    saved = web_profile.strike_profile
    web_profile.strike_profile = fake_profile.strike_profile
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/api/symbols", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    yield base, db
    srv.should_exit = True
    thread.join(timeout=10)
    web_profile.strike_profile = saved


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    base, _ = server
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = ctx.new_page()
    errors: list[str] = []
    outside: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith((base, "data:")) else None)
    yield pg
    ctx.close()
    assert errors == [] and outside == []


def _closes(db) -> list[tuple]:
    """Every session's close snapshot, by hand: the last gex_history row of each day."""
    by_day = {}
    for row in rows(db, "SELECT timestamp, net_gex, call_gex, put_gex, spot_price, flip_point, call_wall, put_wall "
                        "FROM gex_history WHERE symbol='SPY' ORDER BY timestamp"):
        by_day[row[0][:10]] = row
    return [by_day[d] for d in sorted(by_day)]


def _at(page, ts: str) -> None:
    page.wait_for_function(f"document.body.getAttribute('data-profile-at') === '{ts}'", timeout=20000)


def _cards_match(page, row) -> None:
    ts, net, call, put, spot, flip, cw, pw = row
    text = lambda tid: page.locator(f'[data-testid="{tid}"]').inner_text().strip()  # noqa: E731
    assert text("card-net-gex") == fmt.money_short(net)
    assert text("card-call-gex") == fmt.money_short(call)
    assert text("card-put-gex") == fmt.money_short(put)
    assert text("card-spot") == fmt.price(spot) and text("card-flip") == fmt.price(flip)
    assert (text("card-call-wall"), text("card-put-wall")) == (fmt.price(cw), fmt.price(pw))
    assert text("profile-at") == ts


def test_replay_redraws_without_a_page_load(page, server):
    base, db = server
    closes = _closes(db)
    i = len(closes) - 20
    day = closes[i][0][:10]
    page.goto(f"{base}/gex/profile?symbol=SPY&at={day}")
    _at(page, closes[i][0])
    _cards_match(page, closes[i])
    page.evaluate("window.__sameDocument = 1")
    page.keyboard.press("ArrowRight")
    _at(page, closes[i + 1][0])
    _cards_match(page, closes[i + 1])
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    _at(page, closes[i - 1][0])
    _cards_match(page, closes[i - 1])
    assert page.url.endswith("at=" + closes[i - 1][0][:16].replace(" ", "T").replace(":", "%3A"))
    # The slider jumps; play steps on by itself until paused.
    page.locator('[data-testid="replay-slider"]').fill(str(i + 5))
    _at(page, closes[i + 5][0])
    page.click('[data-testid="replay-play"]')
    _at(page, closes[i + 7][0])
    page.click('[data-testid="replay-play"]')
    page.wait_for_timeout(1500)
    stopped = page.evaluate("document.body.getAttribute('data-profile-at')")
    page.wait_for_timeout(1500)
    assert page.evaluate("document.body.getAttribute('data-profile-at')") == stopped
    _cards_match(page, next(r for r in closes if r[0] == stopped))
    assert page.evaluate("window.__sameDocument") == 1  # never reloaded
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "profile_replay.png"), full_page=True)


def test_strike_range_buckets_and_the_api(page, server):
    base, db = server
    last = _closes(db)[-1]
    page.goto(f"{base}/gex/profile?symbol=SPY")
    _at(page, last[0])
    api = page.evaluate("fetch('/api/gex/profile?symbol=SPY').then(r => r.json())")["data"]
    assert api["timestamp"] == last[0] and api["net_gex"] == pytest.approx(last[1])
    spot = api["spot_price"]
    bars = page.evaluate("document.getElementById('chart-strikes').data.map(t => [t.name, t.x, t.y])")
    want = [(k, c / 1e9, p / 1e9) for k, c, p in zip(api["strikes"]["strike"], api["strikes"]["call_gex"],
                                                      api["strikes"]["put_gex"]) if abs(k - spot) <= 0.05 * spot]
    assert [b[0] for b in bars] == ["Call GEX", "Put GEX"]
    assert bars[0][1] == [w[0] for w in want] and bars[0][2] == pytest.approx([w[1] for w in want])
    assert bars[1][2] == pytest.approx([w[2] for w in want])
    page.select_option('[data-testid="strike-range"]', "20")
    page.wait_for_function("document.getElementById('chart-strikes').data[0].x.length > %d" % len(want))
    page.check('[data-testid="by-bucket"]')
    page.wait_for_function("document.getElementById('chart-strikes').data.length === 8")
    names = page.evaluate("document.getElementById('chart-strikes').data.filter(t => t.showlegend !== false).map(t => t.name)")
    assert names == ["0DTE", "this week", "monthly", "other"]
    cells = page.locator('[data-testid="table-buckets"] tr[data-bucket="monthly"] [data-col="call"]').inner_text()
    assert cells == fmt.money_short(sum(next(b for b in api["buckets"] if b["bucket"] == "monthly")["call_gex"]))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "profile_buckets.png"), full_page=True)


def test_history_bars_and_timeline_open_the_profile(page, server):
    base, db = server
    closes = _closes(db)
    page.goto(f"{base}/gex/history?symbol=SPY&days=30")
    page.wait_for_function("document.getElementById('chart-gex').getAttribute('data-rendered') === '1'")
    # Click the last bar: the latest snapshot, which is the last session's close.
    box = page.locator("#chart-gex .bars .point path").last.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/gex/profile?symbol=SPY&days=30&at=*")
    _at(page, closes[-1][0])
    page.goto(f"{base}/gex/history?symbol=SPY&days=30")
    link = page.locator('[data-testid="timeline-profile-link"]').nth(3)
    day = link.inner_text()
    link.click()
    _at(page, next(r[0] for r in closes if r[0].startswith(day)))


def test_api_errors(server):
    base, _ = server
    import json
    import urllib.error

    for query, code in (("at=2025-13-01", 400), ("at=yesterday", 400), ("at=2025-06-01", 404), ("symbol=ZZZ", 404)):
        try:
            urllib.request.urlopen(f"{base}/api/gex/profile?{query}")
            raise AssertionError(query)
        except urllib.error.HTTPError as exc:
            assert exc.code == code, query
            assert json.loads(exc.read())["success"] is False


def test_parse_at():
    assert web_profile.parse_at("2026-03-16T16:00") == "2026-03-16 16:00:00"
    assert web_profile.parse_at("2026-03-16 09:30:00") == "2026-03-16 09:30:00"
    assert web_profile.parse_at("2026-03-16") == "2026-03-16 23:59:59"
    assert web_profile.parse_at(None) is None
