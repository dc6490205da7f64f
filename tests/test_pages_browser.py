"""The four pages in headless Chromium, served by the real `gexhistory serve` on a free 127.0.0.1 port.

Each page must draw its Plotly charts offline and show the database's numbers; screenshots go to
test-artifacts/. Skipped only when /usr/bin/chromium is missing and GEXHISTORY_REQUIRE_BROWSER is unset.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import pages_data as pdata
from gexhistory.web import format as fmt
from helpers import REPO, rows

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
ARTIFACTS = REPO / "test-artifacts"
CHART = ".js-plotly-plot .main-svg"

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists() and not os.environ.get("GEXHISTORY_REQUIRE_BROWSER"):
    pytest.skip(f"{CHROMIUM} is not installed (set GEXHISTORY_REQUIRE_BROWSER=1 to make this a failure)",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(db: str, args: tuple = (), extra_env: dict | None = None):
    """`gexhistory serve --db DB --port P [ARGS]` as a user runs it; returns (process, base URL) once it answers."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_PATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    env.update(extra_env or {})
    proc = subprocess.Popen([sys.executable, "-m", "gexhistory", "serve", "--db", db, "--port", str(port), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/api/symbols", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"server did not start: {proc.stdout.read()}")
            time.sleep(0.2)
    return proc, base


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("browser") / "gex_copilot.db")
    pdata.build(db)
    proc, base = _start(db)
    yield base, db
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
    base, _ = server
    # bypass_csp: wait_for_function evaluates its predicate with eval(), which the pages' CSP refuses;
    # the policy itself is proven in tests/test_pages_csp.py.
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, bypass_csp=True)
    pg = ctx.new_page()
    outside: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith((base, "data:")) else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert outside == [], f"the page reached outside 127.0.0.1: {outside}"
    assert errors == [], f"JavaScript errors: {errors}"


def _open(page, url: str, name: str, charts: int):
    resp = page.goto(url)
    assert resp.status == 200, url
    page.wait_for_selector(CHART, timeout=20000)
    page.wait_for_function(f"document.querySelectorAll('[data-rendered=\"1\"]').length >= {charts}", timeout=20000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _text(page, testid: str) -> str:
    return page.locator(f'[data-testid="{testid}"]').first.inner_text().strip()


def test_gex_history_page(page, server):
    base, db = server
    _open(page, f"{base}/gex/history?symbol=SPY&days=91", "gex_history", 1)
    end = rows(db, "SELECT MAX(date) FROM gamma_daily_summary WHERE symbol='SPY'")[0][0]
    import datetime as dt

    start = (dt.date.fromisoformat(end) - dt.timedelta(days=90)).isoformat()
    snaps = rows(db, "SELECT net_gex, regime, timestamp FROM gex_history WHERE symbol='SPY' AND timestamp >= :a "
                     "ORDER BY timestamp", a=f"{start} 00:00:00")
    gex = [r[0] for r in snaps]
    assert _text(page, "card-avg-gex") == fmt.money_short(sum(gex) / len(gex))
    assert _text(page, "card-current-gex") == fmt.money_short(gex[-1])
    assert _text(page, "card-pct-positive") == fmt.pct(100 * sum(r[1] == "POSITIVE" for r in snaps) / len(snaps))
    closes = {r[2][:10]: r[1] for r in snaps}
    sided = [closes[d] for d in sorted(closes) if closes[d] != "NEUTRAL"]
    assert _text(page, "card-regime-changes") == fmt.integer(sum(a != b for a, b in zip(sided, sided[1:])))
    # One bar per stored snapshot of the window, in the trace of its regime, whose legend colour is fixed.
    bars = page.evaluate("document.getElementById('chart-gex').data.slice(0, 3)"
                         ".map(t => [t.name, t.marker.color, t.y.map((v, i) => v === null ? null : [i, v])])")
    assert [b[0] for b in bars] == ["Net GEX · POSITIVE", "Net GEX · NEGATIVE", "Net GEX · NEUTRAL"]
    assert all(isinstance(b[1], str) for b in bars)
    got = sorted(p for b in bars for p in b[2] if p is not None)
    assert [i for i, _ in got] == list(range(len(snaps)))
    assert [v for _, v in got] == pytest.approx([g / 1e9 for g in gex])
    for b, reg in zip(bars, ("POSITIVE", "NEGATIVE", "NEUTRAL")):
        assert all(snaps[p[0]][1] == reg for p in b[2] if p is not None)
    assert page.locator('[data-testid="badge-synthetic"]').is_visible()
    assert page.locator('[data-testid="badge-modelled"]').is_visible()
    # The range picker reloads the page for another window.
    page.click('[data-testid="range-picker"] >> text=All')
    page.wait_for_url("**days=all**")
    page.wait_for_selector(CHART)
    n_all = rows(db, "SELECT COUNT(*) FROM gex_history WHERE symbol='SPY'")[0][0]
    assert page.evaluate("document.getElementById('chart-gex').data[0].y.length") == n_all
    # From 1Y on: spot, flip and walls at session closes, walls hidden until the toggle shows them.
    sessions = rows(db, "SELECT COUNT(*) FROM gamma_daily_summary WHERE symbol='SPY'")[0][0]
    lines = page.evaluate("document.getElementById('chart-gex').data.filter(t => t.yaxis === 'y2')"
                          ".map(t => [t.name, t.x.length, t.visible])")
    assert lines == [["Spot (close)", sessions, True], ["Flip (close)", sessions, True],
                     ["Call wall (close)", sessions, "legendonly"], ["Put wall (close)", sessions, "legendonly"]]
    page.check('[data-testid="walls-toggle"]')
    assert page.evaluate("document.getElementById('chart-gex').data.filter(t => t.meta === 'wall')"
                         ".map(t => t.visible)") == [True, True]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gex_history_all_walls.png"), full_page=True)


def _tick_labels(page, chart: str, axis: str = "y") -> list[str]:
    return page.evaluate(f"[...document.querySelectorAll('#{chart} .{axis}tick text')].map(t => t.textContent)")


def test_gamma_page(page, server):
    base, db = server
    _open(page, f"{base}/gamma?symbol=SPY&days=all", "gamma", 2)
    avg_iv, avg_gex, lo_pcr, hi_pcr = rows(db, "SELECT AVG(implied_volatility), AVG(net_gex), MIN(put_call_ratio), "
                                               "MAX(put_call_ratio) FROM gamma_history WHERE symbol='SPY'")[0]
    assert _text(page, "card-avg-iv") == fmt.frac_pct(avg_iv)
    assert _text(page, "card-avg-gex") == fmt.money_short(avg_gex)
    # The cards name the picked range, and chain-derived numbers say they are modelled.
    labels = page.locator(".card-label").all_inner_texts()
    assert labels[0].upper() == "AVG NET GEX · ALL" and "(MODELLED)" in labels[2].upper()
    assert "modelled from the price path" in page.inner_text('[data-testid="modelled-note"]')
    a = np.array(rows(db, "SELECT spot_price, net_gex, implied_volatility FROM gamma_history WHERE symbol='SPY' "
                          "ORDER BY timestamp"), dtype=float)
    assert _text(page, "corr-levels-price-net_gex") == fmt.corr(np.corrcoef(a[:, 0], a[:, 1])[0, 1])
    assert _text(page, "corr-levels-price-iv") == fmt.corr(np.corrcoef(a[:, 0], a[:, 2])[0, 1])
    assert _text(page, "corr-changes-net_gex-iv") == fmt.corr(np.corrcoef(np.diff(a[:, 1]), np.diff(a[:, 2]))[0, 1])
    # The modelled put/call ratio moves with volatility, so it is correlated like the others.
    pcr = np.array(rows(db, "SELECT put_call_ratio FROM gamma_history WHERE symbol='SPY' ORDER BY timestamp"), float)
    assert _text(page, "corr-levels-pcr-iv") == fmt.corr(np.corrcoef(pcr[:, 0], a[:, 2])[0, 1])
    # The put/call axis starts at zero, so the ratio's moves are drawn to scale.
    lo, hi = page.evaluate("document.getElementById('chart-flip').layout.yaxis2.range")
    assert lo == 0 and hi > hi_pcr > lo_pcr > 0
    # No repeated tick label on any GEX axis (',.0f' printed 1.5 and 2 both as '2B').
    for chart in ("chart-gamma", "chart-flip"):
        ticks = _tick_labels(page, chart)
        assert len(ticks) == len(set(ticks)) > 2, ticks
    # Two sessions whose net GEX stays within $0..$2.3B: ticks a fraction of $1B apart, '2B, 2B, 1B, 1B'
    # under ',.0f'.
    lo, hi = rows(db, "SELECT MIN(net_gex), MAX(net_gex) FROM gamma_history WHERE symbol='SPY' "
                      "AND date BETWEEN '2024-12-02' AND '2024-12-03'")[0]
    assert 0 < lo < hi < 2.3e9 and hi - lo > 1e9
    for url, chart in (("/gamma?symbol=SPY&start=2024-12-02&end=2024-12-03", "chart-gamma"),
                       ("/gex/history?symbol=SPY&start=2024-12-02&end=2024-12-03", "chart-gex")):
        page.goto(base + url)
        page.wait_for_function(f"document.getElementById('{chart}')?.getAttribute('data-rendered') === '1'")
        ticks = _tick_labels(page, chart)
        assert len(ticks) == len(set(ticks)) > 2, (url, ticks)


def test_psychology_page(page, server):
    base, db = server
    _open(page, f"{base}/psychology/performance?symbol=SPY", "psychology_performance", 1)
    total, resolved, wins, conf = rows(db, "SELECT COUNT(*), COUNT(signal_correct), SUM(CASE WHEN signal_correct = 1 "
                                           "THEN 1 ELSE 0 END), AVG(confidence_score) FROM regime_signals WHERE symbol='SPY'")[0]
    assert _text(page, "card-total-signals") == fmt.integer(total)
    assert _text(page, "card-win-rate") == fmt.pct(100 * wins / resolved)
    assert _text(page, "card-avg-confidence") == fmt.pct(conf)
    seq = [r[0] for r in rows(db, "SELECT signal_correct FROM regime_signals WHERE symbol='SPY' "
                                  "AND signal_correct IS NOT NULL ORDER BY timestamp DESC, id DESC")]
    run = next((i for i, v in enumerate(seq) if v != seq[0]), len(seq))
    word = ("win" if seq[0] else "loss") if run == 1 else ("wins" if seq[0] else "losses")
    assert _text(page, "card-streak") == f"{run} {word}"
    bear = page.locator('tr[data-pattern="TEST_BEAR"]')
    assert bear.locator('[data-col="win_rate"]').inner_text() == "66.7%"
    assert bear.locator('[data-col="expectancy"]').inner_text() == "+1.33%"
    assert bear.locator('[data-col="avg_loss"]').inner_text() == "-1.00%"
    assert page.locator('[data-testid="table-recent"] tbody tr').count() == min(25, total)
    # The chart: win rate over the last 50 resolved signals, one point per resolved signal (hand recount).
    res = rows(db, "SELECT timestamp, signal_correct FROM regime_signals WHERE symbol='SPY' "
                   "AND signal_correct IS NOT NULL ORDER BY timestamp, id")
    line = page.evaluate("document.getElementById('chart-winrate').data.find(t => t.name.startsWith('Win rate'))")
    assert line["x"] == [r[0] for r in res]
    want = [None if i < 49 else 100 * sum(r[1] for r in res[i - 49:i + 1]) / 50 for i in range(len(res))]
    assert line["y"] == [None if w is None else pytest.approx(w) for w in want]
    # Date labels stay inside the chart (rotated category labels used to be cut at the bottom).
    box = page.locator("#chart-winrate").bounding_box()
    labels = page.evaluate("[...document.querySelectorAll('#chart-winrate .xtick text')]"
                           ".map(t => { const r = t.getBoundingClientRect(); return [r.top, r.bottom, r.left, r.right]; })")
    assert labels and all(box["y"] <= t and b <= box["y"] + box["height"] and box["x"] <= left and r <= box["x"] + box["width"]
                          for t, b, left, r in labels)
    # Calibration table: the 'no confidence' row counts the resolved signals without one.
    unrated = rows(db, "SELECT COUNT(*) FROM regime_signals WHERE symbol='SPY' AND signal_correct IS NOT NULL "
                       "AND confidence_score IS NULL")[0][0]
    row = page.locator('[data-testid="table-calibration"] tr[data-bucket="no confidence"]')
    assert row.locator('[data-col="n"]').inner_text() == fmt.integer(unrated)
    page.click('[data-testid="window-picker"] >> text=20')
    page.wait_for_url("**window=20**")
    page.wait_for_function("document.getElementById('chart-winrate')?.getAttribute('data-rendered') === '1'")
    name = page.evaluate("document.getElementById('chart-winrate').data.find(t => t.name.startsWith('Win rate')).name")
    assert name == "Win rate, last 20 signals"


def test_probability_page(page, server):
    base, db = server
    _open(page, f"{base}/probability?symbol=SPY", "probability", 2)
    bull = page.locator('[data-testid="table-pattern-odds"] tr[data-pattern="TEST_BULL"]')
    assert bull.locator('[data-col="up_5d"]').inner_text().startswith("75.0%")  # 3 of 4, by hand
    assert bull.locator('[data-col="correct"]').inner_text().startswith("50.0%")
    last = rows(db, "SELECT primary_regime_type FROM regime_signals WHERE symbol='SPY' "
                    "ORDER BY timestamp DESC, id DESC LIMIT 1")[0][0]
    assert last in page.locator('[data-testid="latest-signal"]').inner_text()
    sessions = rows(db, "SELECT COUNT(*) FROM gamma_daily_summary WHERE symbol='SPY'")[0][0]
    shown = page.locator('[data-testid="table-regime-odds"] tbody tr td:nth-child(2)').all_inner_texts()
    assert sum(int(s.replace(",", "")) for s in shown) == sessions
    # Fewer than 10 observations: grey bars (hand patterns have 1-4 signals), regime colours otherwise.
    n5 = dict(rows(db, "SELECT primary_regime_type, COUNT(price_change_5d) FROM regime_signals WHERE symbol='SPY' "
                       "GROUP BY primary_regime_type"))
    bars = page.evaluate("document.getElementById('chart-patterns').data[0]")
    assert len(bars["x"]) == len(n5)
    for label, color in zip(bars["x"], bars["marker"]["color"]):
        name = label.split("<br>")[0]
        assert label.endswith(f"n={n5[name]:,} signals")
        assert (color == "#6b7280") == (n5[name] < 10), (name, color)
    assert any(n < 10 for n in n5.values()) and any(n >= 10 for n in n5.values())
    pin = page.locator('[data-testid="table-pattern-odds"] tr[data-pattern="TEST_PIN"] [data-col="up_5d"] .small-n')
    assert pin.count() == 1 and "too few" in pin.get_attribute("title")
    regimes = page.evaluate("document.getElementById('chart-regimes').data[0].x")
    assert all(x.endswith(" sessions") for x in regimes)
    assert page.inner_text('[data-testid="latest-pattern-n"]').endswith(" signals")
    assert page.inner_text('[data-testid="latest-regime-n"]').endswith(" sessions")
    page.click('[data-testid="horizon-picker"] >> text=10d')
    page.wait_for_url("**horizon=10d**")
    page.wait_for_selector(CHART)


def test_symbol_and_range_follow_the_links(page, server):
    """The range picked on one page is the range of the next (it used to reset to 3M)."""
    base, _ = server
    _open(page, f"{base}/gex/history?symbol=SPY&days=365", "gex_history_1y", 1)
    for nav, path in (("Gamma", "/gamma"), ("Psychology", "/psychology/performance"), ("Probability", "/probability"),
                      ("GEX History", "/gex/history")):
        page.click(f"nav >> text={nav}")
        page.wait_for_url(f"**{path}?symbol=SPY&days=365")
    assert page.locator('[data-testid="range-picker"] .range.active').inner_text() == "1Y"
    # Page-local choices stay on their page; the range rides along with them.
    page.goto(f"{base}/probability?symbol=SPY&days=365")
    page.click('[data-testid="horizon-picker"] >> text=10d')
    page.wait_for_url("**/probability?symbol=SPY&days=365&horizon=10d")
    page.click("nav >> text=Gamma")
    page.wait_for_url("**/gamma?symbol=SPY&days=365")
    # A custom window (start/end) is carried as well, and a range button replaces it.
    page.goto(f"{base}/gamma?symbol=SPY&start=2025-06-02&end=2025-07-31")
    page.click("nav >> text=GEX History")
    page.wait_for_url("**/gex/history?symbol=SPY&start=2025-06-02&end=2025-07-31")
    assert page.inner_text('[data-testid="window"]').startswith("2025-06-02 → 2025-07-31")
    page.click('[data-testid="range-picker"] >> text=6M')
    page.wait_for_url("**/gex/history?symbol=SPY&days=182")
    # The symbol picker keeps the range too.
    assert page.locator('form.controls input[type="hidden"][name="days"]').get_attribute("value") == "182"


def test_unknown_symbol_page(page, server):
    base, _ = server
    resp = page.goto(f"{base}/gex/history?symbol=NOPE")
    assert resp.status == 404
    assert "unknown symbol" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "not_found.png"))


def test_empty_database_page(browser, tmp_path):
    """Served before the first backfill: every page names the command that fills this database (by its
    file name: pages never show its folder, tests/test_pages_dbname.py)."""
    from gexhistory.store.db import init_schema, open_engine

    db = tmp_path / "gex_copilot.db"
    engine = open_engine(str(db))
    init_schema(engine)  # the tables, no rows (`serve` refuses a file that does not exist)
    engine.dispose()
    proc, base = _start(str(db))
    try:
        pg = browser.new_page(viewport={"width": 1440, "height": 700})
        for url in ("/gex/history", "/probability"):
            assert pg.goto(base + url).status == 200
            box = pg.locator('[data-testid="empty-database"]')
            assert "python backfill_historical_data.py --days 365 --db gex_copilot.db" in box.inner_text()
            assert str(tmp_path) not in pg.content()
        pg.screenshot(path=str(ARTIFACTS / "empty_database.png"))
        pg.close()
    finally:
        _stop(proc)
