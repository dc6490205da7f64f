"""Every page under its Content-Security-Policy in headless Chromium, offline, on the real `gexhistory serve`:
no violation reported, every chart drawn, plotly's own style rules applied from a same-origin sheet, no
request leaving 127.0.0.1, and the API schema that replaces the CDN-backed docs page loads."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli
from test_pages_browser import ARGS, CHROMIUM, _start, _stop

pytestmark = pytest.mark.browser

# (path, status, charts drawn): every page, the profile with its two client-drawn charts, and errors.
PAGES = [("/gex/history?days=all", 200, 1), ("/gex/profile", 200, 2), ("/gamma", 200, 2),
         ("/psychology/performance", 200, 1), ("/probability", 200, 2), ("/gamma?symbol=QQQQ", 404, 0),
         ("/no/such/page", 404, 0), ("/gex/history?days=-1", 400, 0)]

# Reported by the page itself as each violation happens (before any script of ours runs).
LISTEN = ("window.__csp = []; document.addEventListener('securitypolicyviolation', e => "
          "window.__csp.push([e.violatedDirective, e.blockedURI, e.sourceFile, e.lineNumber].join(' ')));")


def test_pages_draw_under_the_policy_offline(tmp_path):
    from playwright.sync_api import sync_playwright

    db = str(tmp_path / "gex_copilot.db")
    assert run_cli(["backfill", "--symbols", "SPY", "--days", "40", "--quiet", "--db", db], tmp_path).returncode == 0
    proc, base = _start(db)
    outside: list[str] = []
    try:
        with sync_playwright() as p:
            # Offline: no name but the loopback resolves, and every request is watched (not routed:
            # routing turns off Chromium's cache, and each page would fetch plotly.js again).
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=[*ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
            context = browser.new_context()
            fetched: list[str] = []
            context.on("request", lambda r: fetched.append(r.url) if r.url.startswith(base) else outside.append(r.url))
            context.add_init_script(LISTEN)
            for path, status, charts in PAGES:
                page = context.new_page()
                fetched.clear()
                console = []
                page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
                assert page.goto(base + path).status == status, path
                if charts:
                    page.wait_for_selector(f":nth-match([data-rendered], {charts})", timeout=30000)
                page.wait_for_load_state("networkidle")
                assert page.evaluate("window.__csp") == [], path
                assert not [c for c in console if "Content Security Policy" in c or "strict CSP" in c], path
                if charts:  # plotly's modebar/hover rules went into the linked sheet, not an inline <style>
                    rules = page.evaluate("document.getElementById('plotly.js-style-global').sheet.cssRules.length")
                    assert rules > 10, path
                assert page.locator("style").count() == 0, path
                # A page without a chart (an error) does not make the browser parse 4.8 MB of plotly.js.
                assert (base + "/static/plotly.min.js" in fetched) == (charts > 0), path
                page.close()
            page = context.new_page()
            schema = json.loads(page.goto(base + "/api/openapi.json").body())
            assert "/api/gex/history" in schema["paths"]
            assert page.goto(base + "/api/docs").status == 404  # no page that would need a CDN
            browser.close()
    finally:
        _stop(proc)
    assert outside == []
