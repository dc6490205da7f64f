"""Security headers on every response the app sends, error pages and static files included."""

from __future__ import annotations

# Everything the pages use is served from this origin (plotly.min.js included), scripts live in
# /static files and styles in style.css: nothing inline and nothing from elsewhere is allowed, so an
# injected <script> or a framing page has no effect. data: images are the empty favicon only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_NAMES = {name for name, _ in HEADERS}


class SecurityHeaders:
    """Pure ASGI wrapper (no per-request task or body buffering, unlike BaseHTTPMiddleware). It wraps the
    whole middleware stack, ServerErrorMiddleware included, so an unhandled error's 500 carries them too."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message = {**message, "headers": kept + HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)
