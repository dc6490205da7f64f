"""JSON API under the AlphaGEX paths. Every answer: {"success": true, "symbol": ..., "data": ...}.

Keys and vocabulary are the tables' own: symbol, timestamp, net_gex, flip_point, call_wall, put_wall,
spot_price, regime (POSITIVE/NEGATIVE/NEUTRAL), mm_state (LONG_GAMMA/SHORT_GAMMA), data_source,
chain_source. Unknown symbols answer 404 with {"success": false, "detail": ...}.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from gexhistory.store import queries as q
from gexhistory.store import signal_queries as sq
from gexhistory.web import profile, views
from gexhistory.web.params import parse_date, parse_days, parse_symbol, parse_window

router = APIRouter(prefix="/api")


def _engine_and_symbol(request: Request, symbol: str | None):
    db = request.app.state.db
    known = db.symbols()
    if not known:
        raise views.NotFound(f"the database has no GEX history yet: fill it with `{request.app.state.fill_command}`")
    return db.engine(), parse_symbol(symbol, known)


def _window(engine, sym, days, start, end, default=views.DEFAULT_DAYS):
    return views.window_for(engine, sym, parse_days(days, default), parse_date(start, "start"), parse_date(end, "end"))


def _resolution(k: int) -> str:
    """'snapshot' when rows are the stored snapshots, else 'N sessions' averaged per row."""
    return "snapshot" if k == 0 else f"{k} session" + ("s" if k > 1 else "")


def _ok(sym: str, data, **extra) -> dict:
    return {"success": True, "symbol": sym, **extra, "data": data}


@router.get("/symbols")
def api_symbols(request: Request) -> dict:
    db = request.app.state.db
    eng = db.engine()
    out = []
    for s in db.symbols():
        first, last = q.date_span(eng, s)
        out.append({"symbol": s, "first_date": first.isoformat(), "last_date": last.isoformat(),
                    **views.provenance(eng, s)})
    return {"success": True, "data": out}


@router.get("/gex/history")
def gex_history(request: Request, symbol: str | None = None, days: str | None = None,
                start: str | None = None, end: str | None = None, max_points: int = q.MAX_POINTS) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    w = _window(eng, sym, days, start, end)
    v = views.gex_history(eng, w, max(10, min(max_points, 20000)))
    return _ok(sym, v["series"], start=w.d_lo, end=w.d_hi, count=len(v["series"]),
               sessions_per_point=v["sessions_per_point"], resolution=_resolution(v["sessions_per_point"]), summary=v["cards"], **views.provenance(eng, sym))


@router.get("/gex/regime-changes")
def gex_regime_changes(request: Request, symbol: str | None = None, days: str | None = None,
                       start: str | None = None, end: str | None = None, limit: int = 100) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    w = _window(eng, sym, days, start, end)
    rows = q.regime_changes(eng, w, limit=max(1, min(limit, 5000)))
    counts = q.count_regime_changes(eng, w)
    return _ok(sym, rows, start=w.d_lo, end=w.d_hi, count=len(rows), total_changes=counts["at_closes"],
               snapshot_regime_flips=counts["snapshot_flips"], method=REGIME_CHANGE_METHOD)


REGIME_CHANGE_METHOD = ("counted at session closes; a NEUTRAL close (|net GEX| < 5% of gross) keeps the previous "
                        "regime, so a change needs net GEX to cross the whole neutral band between two closes")


@router.get("/gamma/{symbol}/history")
def gamma_history(request: Request, symbol: str, days: str | None = None, start: str | None = None,
                  end: str | None = None, max_points: int = q.MAX_POINTS) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    w = _window(eng, sym, days, start, end)
    rows, k = q.gamma_series(eng, w, max(10, min(max_points, 20000)))
    return _ok(sym, rows, start=w.d_lo, end=w.d_hi, count=len(rows), sessions_per_point=k, resolution=_resolution(k),
               **views.provenance(eng, sym))


@router.get("/gamma/{symbol}/summary")
def gamma_summary(request: Request, symbol: str, days: str | None = None, start: str | None = None,
                  end: str | None = None) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    nd = parse_days(days, views.DEFAULT_DAYS)
    w = views.window_for(eng, sym, nd, parse_date(start, "start"), parse_date(end, "end"))
    v = views.gamma(eng, w, max_points=10, label=views.range_label(nd, w, custom=bool(start)))
    return _ok(sym, {"stats": v["stats"], "correlations": v["correlations"], "daily": v["timeline"],
                     "modelled_sessions": v["modelled_sessions"], "sessions": v["sessions"]},
               start=w.d_lo, end=w.d_hi)


@router.get("/psychology/performance/overview")
def psychology_overview(request: Request, symbol: str | None = None) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    return _ok(sym, views.psychology(eng, sym, recent=0)["overview"])


@router.get("/psychology/performance/by-pattern")
def psychology_by_pattern(request: Request, symbol: str | None = None) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    return _ok(sym, views.psychology(eng, sym, recent=0)["by_pattern"])


@router.get("/psychology/performance/signals")
def psychology_signals(request: Request, symbol: str | None = None, limit: int = 50, pattern: str | None = None) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    rows = sq.recent_signals(eng, sym, limit=max(1, min(limit, 1000)), pattern=pattern)
    return _ok(sym, rows, count=len(rows))


@router.get("/psychology/performance/chart-data")
def psychology_chart(request: Request, symbol: str | None = None, window: str | None = None) -> dict:
    """Per resolved signal: the win rate of the last `window` resolved signals with its Wilson interval."""
    eng, sym = _engine_and_symbol(request, symbol)
    n = parse_window(window)
    v = views.psychology(eng, sym, recent=0, window=n)
    return _ok(sym, v["chart"], window=n, count=len(v["chart"]))


@router.get("/psychology/performance/calibration")
def psychology_calibration(request: Request, symbol: str | None = None) -> dict:
    """Resolved signals per confidence bucket against their realised win rate."""
    eng, sym = _engine_and_symbol(request, symbol)
    return _ok(sym, views.calibration_rows(eng, sym))


@router.get("/probability/patterns")
def probability_patterns(request: Request, symbol: str | None = None) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    return _ok(sym, views.probability(eng, sym)["patterns"])


@router.get("/probability/regimes")
def probability_regimes(request: Request, symbol: str | None = None) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    return _ok(sym, views.probability(eng, sym)["regimes"])


@router.get("/probability/latest")
def probability_latest(request: Request, symbol: str | None = None) -> dict:
    eng, sym = _engine_and_symbol(request, symbol)
    return _ok(sym, views.probability(eng, sym)["latest"])


@router.get("/gex/profile")
def gex_profile(request: Request, symbol: str | None = None, at: str | None = None) -> dict:
    """GEX by strike of one stored snapshot (default: the latest; a date: that session's close), per
    expiry bucket, and net GEX across hypothetical spots (+-20%) with the flip."""
    eng, sym = _engine_and_symbol(request, symbol)
    data = profile.profile(eng, request.app.state.db.db, sym, profile.parse_at(at))
    return _ok(sym, data, **views.provenance(eng, sym))


@router.get("/gex/profile/sessions")
def gex_profile_sessions(request: Request, symbol: str | None = None) -> dict:
    """The replay's steps: every stored session's close snapshot, oldest first."""
    eng, sym = _engine_and_symbol(request, symbol)
    steps = profile.replay_steps(eng, sym)
    return _ok(sym, steps, count=len(steps))
