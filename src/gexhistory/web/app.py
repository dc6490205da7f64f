"""The FastAPI app behind `gexhistory serve`: read-only pages and the JSON API over one database."""

from __future__ import annotations

import gzip
import threading
from importlib import resources
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from gexhistory.store import queries
from gexhistory.config import database_url
from gexhistory.store.readonly import open_readonly, sqlite_path
from gexhistory.web import api, pages
from gexhistory.web import format as fmt
from gexhistory.web.cache import ResponseCache, postgres_token, sqlite_token
from gexhistory.web.dbname import shown_db_arg, shown_name
from gexhistory.web.headers import SecurityHeaders
from gexhistory.web.params import BadRequest
from gexhistory.web.profile import ProfileUnavailable
from gexhistory.web.views import RANGES, NotFound, db_arg, fill_command

WEB = Path(__file__).resolve().parent


def page_url(path: str, state: dict, drop: tuple = (), **extra) -> str:
    """path?query from the page state (symbol, range) with `drop` removed and `extra` set (None: unset)."""
    params = {k: v for k, v in {**state, **extra}.items() if v is not None and k not in drop}
    return f"{path}?{urlencode(params)}" if params else path


def plotly_js() -> Path:
    """plotly.min.js shipped inside the installed plotly package: the pages never reach a CDN."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():  # pragma: no cover - a broken plotly install
        raise RuntimeError(f"plotly.min.js not found at {path}")
    return path


class CompressedFile:
    """A static file gzipped once, on its first request: plotly.min.js is 4.8 MB as sent, 1.4 MB
    gzipped, and compressing it per request would cost the server ~0.2 s of CPU each time."""

    def __init__(self, path: Path):
        self.path = path
        self._gz: bytes | None = None
        self._lock = threading.Lock()

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gz is None:
                self._gz = gzip.compress(self.path.read_bytes(), compresslevel=9, mtime=0)
            return self._gz


class Database:
    """Opens the read-only engine on first use, so a server started before the first backfill works."""

    def __init__(self, db: str | None):
        self.db = db
        self.url = shown_name(db)  # what the pages show: never a directory or a credential
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        path = sqlite_path(database_url(db))
        self.change_token = sqlite_token(path) if path is not None else postgres_token(self.engine)
        self.token_is_query = path is None

    def engine(self) -> Engine | None:
        with self._lock:
            if self._engine is None:
                self._engine = open_readonly(self.db)
            return self._engine

    def symbols(self) -> list[str]:
        eng = self.engine()
        return queries.symbols(eng) if eng is not None else []

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class HardenedApp(FastAPI):
    """FastAPI whose outermost layers add the security headers (see headers.py) and answer repeated
    requests from the per-process cache while the database is unchanged (see cache.py)."""

    def build_middleware_stack(self):
        db = self.state.db
        return SecurityHeaders(ResponseCache(super().build_middleware_stack(), db.change_token, db.token_is_query))


def create_app(db: str | None = None) -> FastAPI:
    """The app for the database named by `db` (a path or URL; None: DATABASE_URL/DATABASE_PATH/default)."""
    # No Swagger page: FastAPI's loads its scripts from a public CDN (blank offline, and outside the CSP);
    # the schema itself is served at /api/openapi.json.
    app = HardenedApp(title="gexhistory", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.db = Database(db)
    app.state.fill_command = fill_command(shown_db_arg(db))
    templates = Jinja2Templates(directory=str(WEB / "templates"))
    templates.env.filters.update(fmt.FILTERS)
    templates.env.globals.update(RANGES=RANGES, FILL_COMMAND=app.state.fill_command, DB_ARG=db_arg(shown_db_arg(db)),
                                 sign_class=fmt.sign_class,
                                 url=page_url)
    app.state.templates = templates
    js = CompressedFile(plotly_js())
    # Pages and JSON: compressed per response (level 6: most of the gain for a fraction of level 9's CPU).
    # Responses that already carry a Content-Encoding (plotly.min.js below) pass through unchanged.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_static(request: Request):
        headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
        if "gzip" not in request.headers.get("accept-encoding", ""):
            return FileResponse(js.path, media_type="application/javascript", headers=headers)
        return Response(js.gzipped(), media_type="application/javascript",
                        headers={**headers, "Content-Encoding": "gzip"})

    app.mount("/static", StaticFiles(directory=str(WEB / "static")), name="static")

    def _is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def _error(request: Request, status: int, message: str):
        if _is_api(request):
            return JSONResponse({"success": False, "detail": message}, status_code=status)
        # The picker shows the symbol asked for (marked as not stored), and choosing another keeps the range.
        asked = request.query_params.get("symbol", "").strip().upper()[:16] or None
        state = {k: request.query_params[k] for k in ("days", "start", "end") if request.query_params.get(k)}
        return templates.TemplateResponse(request, "error.html", {"status": status, "message": message, "db_url": app.state.db.url,
                                                                  "page": None, "symbols": app.state.db.symbols(),
                                                                  "symbol": asked, "state": state},
                                           status_code=status)

    @app.exception_handler(NotFound)
    def _not_found(request: Request, exc: NotFound):
        return _error(request, 404, str(exc))

    @app.exception_handler(ProfileUnavailable)
    def _unavailable(request: Request, exc: ProfileUnavailable):
        return _error(request, 503, str(exc))

    @app.exception_handler(BadRequest)
    def _bad_request(request: Request, exc: BadRequest):
        return _error(request, 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException):
        msg = "page not found" if exc.status_code == 404 else str(exc.detail)
        return _error(request, exc.status_code, msg)

    app.include_router(api.router)
    app.include_router(pages.router)
    return app
