"""The per-process answer cache (web/cache.py) never serves what the database no longer says: each
answer is compared with a fresh app's, before and after backfills that add sessions and a symbol while
the app keeps serving, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

URLS = ["/api/gex/history?days=all", "/api/symbols", "/gex/history?days=all", "/probability",
        "/gex/history?symbol=QQQ", "/api/gex/history?symbol=QQQ"]


def _fill(db: str, symbol: str, start: dt.date, end: dt.date) -> None:
    from gexhistory.pipeline.backfill import BackfillOptions, run_backfill

    run_backfill(BackfillOptions([symbol], start, end, source="synthetic", db=db))


def _answers(client) -> dict:
    out = {}
    for url in URLS:
        r = client.get(url, headers={"Accept-Encoding": "gzip"})
        out[url] = (r.status_code, r.content)
    return out


def _fresh(db: str) -> dict:
    from gexhistory.web.app import create_app

    app = create_app(db)
    with TestClient(app) as client:
        out = _answers(client)
    app.state.db.dispose()
    return out


def test_cached_answers_follow_every_change(db_url):
    from gexhistory.web.app import create_app

    _fill(db_url, "SPY", dt.date(2024, 10, 1), dt.date(2024, 10, 31))
    app = create_app(db_url)
    with TestClient(app) as client:
        first = _answers(client)
        cache = app.middleware_stack.app
        assert len(cache.entries) == len(URLS)
        assert _answers(client) == first  # hits: the same bytes
        assert first == _fresh(db_url)
        assert first["/gex/history?symbol=QQQ"][0] == 404

        _fill(db_url, "SPY", dt.date(2024, 11, 1), dt.date(2024, 11, 29))  # more sessions
        second = _answers(client)
        assert second == _fresh(db_url)
        assert second["/api/gex/history?days=all"] != first["/api/gex/history?days=all"]

        _fill(db_url, "QQQ", dt.date(2024, 11, 1), dt.date(2024, 11, 15))  # a symbol that was a 404
        third = _answers(client)
        assert third == _fresh(db_url)
        assert third["/gex/history?symbol=QQQ"][0] == 200 and third["/api/gex/history?symbol=QQQ"][0] == 200
    app.state.db.dispose()


def test_readers_arriving_together_wait_for_one_build():
    """16 requests for one URL at once, on a cold cache: the answer is built once and all get it."""
    import asyncio

    from gexhistory.web.cache import ResponseCache

    builds = []

    async def slow_app(scope, receive, send):
        builds.append(scope["path"])
        await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        body = f"{scope['path']} built {builds.count(scope['path'])}".encode()
        await send({"type": "http.response.body", "body": body})

    cache = ResponseCache(slow_app, token=lambda: "v1", blocking=False)

    async def one(path):
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": []}
        await cache(scope, None, send)
        return sent[0]["status"], sent[-1]["body"]

    async def main():
        return await asyncio.gather(*[one("/a") for _ in range(16)], one("/b"))

    answers = asyncio.run(main())
    assert answers == [(200, b"/a built 1")] * 16 + [(200, b"/b built 1")]
    assert sorted(builds) == ["/a", "/b"]
