"""Server-rendered pages: /gex/history, /gex/profile, /gamma, /psychology/performance, /probability."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from gexhistory.web import charts, profile, views
from gexhistory.web.params import parse_date, parse_days, parse_symbol, parse_window

router = APIRouter()


# What a view is, carried by every link between pages: the symbol and the picked range (the range
# reset to 3M on every page change). Page-local choices (horizon, window) stay on their page.
STATE_KEYS = ("days", "start", "end")


def _state(request: Request, symbol: str | None) -> dict:
    state = {"symbol": symbol} if symbol else {}
    for key in STATE_KEYS:
        if request.query_params.get(key):
            state[key] = request.query_params[key]
    return state


def _render(request: Request, template: str, page: str, **ctx):
    db = request.app.state.db
    return request.app.state.templates.TemplateResponse(
        request, template, {"page": page, "db_url": db.url, "state": _state(request, ctx.get("symbol")), **ctx})


def _setup(request: Request, page: str, symbol: str | None):
    """(engine, symbols, symbol) or an empty-database response."""
    db = request.app.state.db
    known = db.symbols()
    if not known:
        return None, _render(request, "empty.html", page, symbols=[])
    return (db.engine(), known, parse_symbol(symbol, known)), None


def _check_range(days: str | None, start: str | None, end: str | None) -> None:
    """Pages that do not use the range still carry it to the next page: a malformed one is refused
    here (400) rather than passed along."""
    parse_days(days, None), parse_date(start, "start"), parse_date(end, "end")


def _fig(fig: dict) -> str:
    # Embedded in a <script type="application/json">: '</' must not end the script element early.
    return json.dumps(fig, separators=(",", ":"), default=str).replace("</", "<\\/")


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/gex/history", status_code=307)


@router.get("/gex/history", include_in_schema=False)
def gex_history_page(request: Request, symbol: str | None = None, days: str | None = None,
                     start: str | None = None, end: str | None = None):
    got, empty = _setup(request, "gex", symbol)
    if empty:
        return empty
    eng, known, sym = got
    nd = parse_days(days, views.DEFAULT_DAYS)
    w = views.window_for(eng, sym, nd, parse_date(start, "start"), parse_date(end, "end"))
    v = views.gex_history(eng, w)
    return _render(request, "gex_history.html", "gex", symbols=known, symbol=sym, days=nd,
                   days_raw=days or str(views.DEFAULT_DAYS), v=v, prov=views.provenance(eng, sym),
                   fig=_fig(charts.gex_history(v["series"], v["sessions_per_point"], v["closes"], v["close_lines"])))


@router.get("/gamma", include_in_schema=False)
def gamma_page(request: Request, symbol: str | None = None, days: str | None = None,
               start: str | None = None, end: str | None = None):
    got, empty = _setup(request, "gamma", symbol)
    if empty:
        return empty
    eng, known, sym = got
    nd = parse_days(days, views.DEFAULT_DAYS)
    w = views.window_for(eng, sym, nd, parse_date(start, "start"), parse_date(end, "end"))
    v = views.gamma(eng, w, label=views.range_label(nd, w, custom=bool(start)))
    k, modelled = v["sessions_per_point"], v["modelled_sessions"] > 0
    return _render(request, "gamma.html", "gamma", symbols=known, symbol=sym, days=nd,
                   days_raw=days or str(views.DEFAULT_DAYS), v=v, prov=views.provenance(eng, sym),
                   fig=_fig(charts.gamma_trends(v["series"], k, modelled)),
                   fig2=_fig(charts.gamma_flip(v["series"], k, modelled)))


@router.get("/psychology/performance", include_in_schema=False)
def psychology_page(request: Request, symbol: str | None = None, window: str | None = None,
                    days: str | None = None, start: str | None = None, end: str | None = None):
    got, empty = _setup(request, "psychology", symbol)
    if empty:
        return empty
    eng, known, sym = got
    _check_range(days, start, end)
    n = parse_window(window)
    v = views.psychology(eng, sym, window=n)
    return _render(request, "psychology.html", "psychology", symbols=known, symbol=sym, v=v,
                   windows=views.ROLLING_WINDOWS, prov=views.provenance(eng, sym), fig=_fig(charts.win_rate(v["chart"], n)))


@router.get("/probability", include_in_schema=False)
def probability_page(request: Request, symbol: str | None = None, horizon: str = "5d",
                     days: str | None = None, start: str | None = None, end: str | None = None):
    got, empty = _setup(request, "probability", symbol)
    if empty:
        return empty
    eng, known, sym = got
    _check_range(days, start, end)
    if horizon not in ("1d", "5d", "10d"):
        horizon = "5d"
    v = views.probability(eng, sym)
    return _render(request, "probability.html", "probability", symbols=known, symbol=sym, v=v, horizon=horizon,
                   prov=views.provenance(eng, sym),
                   min_n=charts.MIN_N,
                   fig=_fig(charts.odds_bars(v["patterns"], "pattern", horizon, "signals")),
                   fig2=_fig(charts.odds_bars(v["regimes"], "regime", horizon, "sessions")))


@router.get("/gex/profile", include_in_schema=False)
def profile_page(request: Request, symbol: str | None = None, at: str | None = None):
    got, empty = _setup(request, "profile", symbol)
    if empty:
        return empty
    eng, known, sym = got
    data = profile.profile(eng, request.app.state.db.db, sym, profile.parse_at(at))
    steps = profile.replay_steps(eng, sym)
    boot = {"symbol": sym, "data": data, "index": profile.step_index(steps, data["timestamp"]),
            "steps": [[s["timestamp"], s["net_gex"], s["regime"], s["chain_source"]] for s in steps]}
    return _render(request, "profile.html", "profile", symbols=known, symbol=sym, v=data,
                   prov=views.provenance(eng, sym), boot=_fig(boot))
