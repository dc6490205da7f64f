"""The 404 page of an unknown symbol, in headless Chromium on the real `gexhistory serve`: its picker shows
the symbol asked for (not a stored one that was never asked), and picking a stored one keeps the range."""

from __future__ import annotations

import pytest

from helpers import run_cli
from test_pages_browser import ARGS, ARTIFACTS, CHROMIUM, _start, _stop

pytestmark = pytest.mark.browser


def test_the_picker_shows_the_symbol_asked_for(tmp_path):
    from playwright.sync_api import sync_playwright

    db = str(tmp_path / "gex_copilot.db")
    fill = run_cli(["backfill", "--symbols", "SPY,QQQ", "--days", "40", "--quiet", "--db", db], tmp_path)
    assert fill.returncode == 0
    proc, base = _start(db)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 700})
            resp = page.goto(f"{base}/gamma?symbol=qqqq&days=30")
            assert resp.status == 404
            assert "unknown symbol 'qqqq': stored symbols are QQQ, SPY" in page.inner_text('[data-testid="error-page"]')
            picker = page.locator('[data-testid="symbol-picker"]')
            assert picker.input_value() == "QQQQ"
            assert picker.locator("option:checked").inner_text() == "QQQQ (not stored)"
            assert picker.locator("option").all_inner_texts() == ["QQQQ (not stored)", "QQQ", "SPY"]
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "not_found_picker.png"))
            # Picking a stored symbol lands on the same page with the range asked for.
            with page.expect_navigation():
                picker.select_option("QQQ")
            assert page.url == f"{base}/gamma?symbol=QQQ&days=30"
            assert page.locator('[data-testid="symbol-picker"]').input_value() == "QQQ"
            assert "error-page" not in page.content()
            browser.close()
    finally:
        _stop(proc)
