"""Whole answers kept per process until the database changes.

Every page and API answer is a function of its URL and the stored rows, and the same few URLs are asked
for again and again (a ten-year page costs 100-300 ms of CPU to build; 32 readers of it at once queued
for seconds). So the finished answer, compressed or not as asked, is kept under its URL and served
again while the database's change token is the one it was built under. The token is read before each
request (a few stat() calls on SQLite, one trivial query on PostgreSQL), so a backfill's commit is
seen by the very next request: nothing stale is ever served.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from anyio import to_thread
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

MAX_BYTES = 64 << 20  # per process; least recently used answers go first
MAX_ENTRY = 4 << 20  # larger answers (full-history JSON) are rebuilt each time rather than crowd out pages
CACHED_STATUS = (200, 404)


def sqlite_token(path: Path) -> Callable[[], object]:
    """Size and modification time of the file and its -wal: every commit changes the -wal (WAL mode)
    or the file itself (checkpoints, rollback journal); a file not there yet gives None (no caching)."""
    files = (path, path.with_name(path.name + "-wal"))

    def token():
        out = []
        for f in files:
            try:
                st = os.stat(f)
            except FileNotFoundError:
                if f is path:
                    return None
                out.append(None)
                continue
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    return token


def postgres_token(engine: Callable[[], Engine | None]) -> Callable[[], object]:
    """The server's current snapshot (xmin:xmax:in-progress ids) moves whenever any transaction that
    writes begins or ends, so an unchanged snapshot means no row could have changed. Conservative:
    writes to other databases on the same server invalidate too."""

    def token():
        eng = engine()
        if eng is None:
            return None
        try:
            with eng.connect() as conn:
                return conn.exec_driver_sql("SELECT pg_current_snapshot()::text").scalar()
        except SQLAlchemyError:
            # PostgreSQL before 13, or the server gone: no caching; the request itself reports the fault.
            return None

    return token


class ResponseCache:
    """Pure ASGI layer: GET answers (not /static: those have their own handling) kept by path, query
    and whether gzip was accepted, valid while `token()` returns what it returned when they were built."""

    def __init__(self, app, token: Callable[[], object], blocking: bool):
        self.app = app
        self.token = token
        self.blocking = blocking  # PostgreSQL's token is a query: run it off the event loop
        self.entries: OrderedDict[tuple, tuple] = OrderedDict()
        self.size = 0
        # (key, token) -> set when the answer being built ends: 32 readers arriving together after a
        # backfill wait for one build instead of running 32 (the event loop is one thread: no lock).
        self.building: dict[tuple, asyncio.Event] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        token = await to_thread.run_sync(self.token) if self.blocking else self.token()
        if token is None:
            await self.app(scope, receive, send)
            return
        gzip = any(k == b"accept-encoding" and b"gzip" in v for k, v in scope["headers"])
        key = (scope["path"], scope["query_string"], gzip)
        if await self._serve_hit(key, token, send):
            return
        pending = self.building.get((key, token))
        if pending is not None:
            await pending.wait()
            if await self._serve_hit(key, token, send):
                return
        done = self.building.setdefault((key, token), asyncio.Event())
        try:
            await self._build(scope, receive, send, key, token, done)
        finally:
            done.set()
            if self.building.get((key, token)) is done:
                del self.building[(key, token)]

    async def _serve_hit(self, key, token, send) -> bool:
        hit = self.entries.get(key)
        if hit is None or hit[0] != token:
            return False
        self.entries.move_to_end(key)
        await send({"type": "http.response.start", "status": hit[1], "headers": hit[2]})
        await send({"type": "http.response.body", "body": hit[3]})
        return True

    async def _build(self, scope, receive, send, key, token, done: asyncio.Event) -> None:
        start: dict = {}
        chunks: list[bytes] = []

        async def keep(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._store(key, token, start, b"".join(chunks))
                    done.set()  # before sending: waiters need not wait for this client to read it
            await send(message)

        await self.app(scope, receive, keep)

    def _store(self, key, token, start: dict, body: bytes) -> None:
        if start.get("status") not in CACHED_STATUS or len(body) > MAX_ENTRY:
            return
        old = self.entries.pop(key, None)
        if old is not None:
            self.size -= len(old[3])
        self.entries[key] = (token, start["status"], list(start.get("headers", [])), body)
        self.size += len(body)
        while self.size > MAX_BYTES:
            _, dropped = self.entries.popitem(last=False)
            self.size -= len(dropped[3])
