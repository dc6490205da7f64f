"""uvicorn's h11 protocol with deadlines for slow clients.

uvicorn closes a keep-alive connection that idles after a response (timeout_keep_alive), but not one
that never finishes its request: a client that connects and says nothing, or trickles its headers or
body a byte at a time, holds its socket (and, for a body, a request task) for as long as it likes; and
a client that stops reading its response holds the task writing it. Here each request must arrive
whole within REQUEST_SECONDS of the connection being opened or of the previous response ending, and a
response whose writing stalls for WRITE_SECONDS is abandoned.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gexhistory.config import env_float

# Environment overrides exist for the tests, which cannot wait the production deadlines out.
REQUEST_SECONDS = env_float("GEXHISTORY_REQUEST_TIMEOUT", 10.0, 0.1, 3600.0)
WRITE_SECONDS = env_float("GEXHISTORY_WRITE_TIMEOUT", 30.0, 0.1, 3600.0)


class GuardedH11Protocol(H11Protocol):
    _request_timer: asyncio.TimerHandle | None = None
    _write_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_request_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._cancel("_request_timer")  # the request is in: what follows is the app's time

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            # The next request on this connection gets its own deadline (uvicorn's keep-alive timer
            # covers a connection that stays silent; this one a request that starts and never ends).
            self._arm_request_timer()
            if self.conn.their_state is h11.DONE:  # a pipelined request already read whole
                self._cancel("_request_timer")

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(WRITE_SECONDS, self._abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel("_write_timer")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("_request_timer")
        self._cancel("_write_timer")
        super().connection_lost(exc)

    def _arm_request_timer(self) -> None:
        self._cancel("_request_timer")
        self._request_timer = self.loop.call_later(REQUEST_SECONDS, self._abort)

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def _abort(self) -> None:
        # abort, not close: close() would wait to flush a buffer the client is not reading.
        self._request_timer = self._write_timer = None
        self.transport.abort()
