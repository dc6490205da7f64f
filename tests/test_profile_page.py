"""/gex/profile in headless Chromium, served by the real `gexhistory serve`: cards equal the database,
bars and curve equal the API, the replay (slider, play, arrow keys) redraws without a page load, the
strike range and expiry-bucket controls, links from /gex/history, and an imported chain's session.
Screenshots of a modelled and an imported snapshot go to test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

import pages_data as pdata
import profile_data
from gexhistory.web import format as fmt
from helpers import REPO, rows
from test_pages_browser import _start, _stop

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
ARTIFACTS = REPO / "test-artifacts"

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists() and not os.environ.get("GEXHISTORY_REQUIRE_BROWSER"):
    pytest.skip(f"{CHROMIUM} is not installed (set GEXHISTORY_REQUIRE_BROWSER=1 to make this a failure)",
                allow_module_level=True)


IMPORTED = dt.date(2025, 10, 27)  # a Monday near the end of pages_data's window


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile")
    db = str(folder / "gex_copilot.db")
    pdata.build(db)
    _, _, label = profile_data.import_chain(db, folder, IMPORTED)
    proc, base = _start(db)
    yield base, db, label
    _stop(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    base = server[0]
    # bypass_csp: wait_for_function evaluates its predicate with eval(), which the pages' CSP refuses;
    # the policy itself is proven in tests/test_pages_csp.py.
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, bypass_csp=True)
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
    page.wait_for_function(f"document.body?.getAttribute('data-profile-at') === '{ts}'", timeout=20000)


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
    base, db, _ = server
    closes = _closes(db)
    i = len(closes) - 40
    day = closes[i][0][:10]
    page.goto(f"{base}/gex/profile?symbol=SPY&at={day}")
    _at(page, closes[i][0])
    _cards_match(page, closes[i])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "profile_modelled.png"), full_page=True)
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
    stopped = page.evaluate("document.body?.getAttribute('data-profile-at')")
    page.wait_for_timeout(1500)
    assert page.evaluate("document.body?.getAttribute('data-profile-at')") == stopped
    _cards_match(page, next(r for r in closes if r[0] == stopped))
    assert page.evaluate("window.__sameDocument") == 1  # never reloaded
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "profile_replay.png"), full_page=True)


def test_strike_range_buckets_and_the_api(page, server):
    base, db, _ = server
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
    curve = page.evaluate("document.getElementById('chart-curve').data[0]")
    assert curve["x"] == api["curve"]["spot"] and curve["y"] == pytest.approx([v / 1e9 for v in api["curve"]["net_gex"]])
    page.select_option('[data-testid="strike-range"]', "20")
    page.wait_for_function("document.getElementById('chart-strikes')?.data?.[0]?.x?.length > %d" % len(want))
    page.check('[data-testid="by-bucket"]')
    page.wait_for_function("document.getElementById('chart-strikes')?.data?.length === 4")
    names = page.evaluate("document.getElementById('chart-strikes').data.map(t => t.name)")
    assert names == ["0DTE", "this week", "monthly", "other"]
    for b in api["buckets"]:
        cell = page.locator(f'[data-testid="table-buckets"] tr[data-bucket="{b["bucket"]}"] [data-col="net"]').inner_text()
        assert cell == fmt.money_short(sum(b["net_gex"]))
    total = page.locator('[data-testid="table-buckets"] tr[data-bucket="total"] [data-col="net"]').inner_text()
    assert total == fmt.money_short(last[1])  # the buckets add up to the stored net GEX
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "profile_buckets.png"), full_page=True)


def test_imported_chain_session(page, server):
    base, db, label = server
    ts = f"{IMPORTED} 16:00:00"
    row = next(r for r in _closes(db) if r[0] == ts)
    page.goto(f"{base}/gex/profile?symbol=SPY&at={IMPORTED}")
    _at(page, ts)
    _cards_match(page, row)
    assert page.inner_text('[data-testid="card-chain"]') == label
    assert "imported" in page.locator(".card-sub[data-field='chain_note']").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "profile_imported.png"), full_page=True)
    page.keyboard.press("ArrowRight")  # into the next, modelled session and its note
    page.wait_for_function(f"document.body?.getAttribute('data-profile-at') > '{ts}'")
    assert page.inner_text('[data-testid="card-chain"]') == "modelled"


def test_history_bars_and_timeline_open_the_profile(page, server):
    base, db, _ = server
    closes = _closes(db)
    page.goto(f"{base}/gex/history?symbol=SPY&days=30")
    page.wait_for_function("document.getElementById('chart-gex')?.getAttribute('data-rendered') === '1'")
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
