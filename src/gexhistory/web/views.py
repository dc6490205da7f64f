"""What each page and API route shows: store queries joined with engine.stats, as plain dicts.

Pages and the JSON API both call these, so the numbers on a page are exactly the API's numbers.
"""

from __future__ import annotations

import datetime as dt
import math
import shlex

from sqlalchemy import Engine

from gexhistory.config import redact_url
from gexhistory.engine import stats
from gexhistory.store import queries as q
from gexhistory.store import signal_queries as sq

RANGES = (("1M", 30), ("3M", 91), ("6M", 182), ("1Y", 365), ("2Y", 730), ("5Y", 1826), ("10Y", 3652), ("All", None))
DEFAULT_DAYS = 91
FILL_COMMAND = "python backfill_historical_data.py --days 365"


def db_arg(db: str | None) -> str:
    """' --db X' for the commands a page suggests: the server's own --db when it was given one (without
    it the backfill reads DATABASE_URL / DATABASE_PATH / ./gex_copilot.db as the server did)."""
    return f" --db {shlex.quote(redact_url(db))}" if db else ""


def fill_command(db: str | None) -> str:
    """The backfill that fills the database the server reads."""
    return FILL_COMMAND + db_arg(db)


class NotFound(Exception):
    """An unknown symbol (or one with no stored sessions): the routes answer 404."""


def window_for(engine: Engine, symbol: str, days: int | None, start: dt.date | None = None,
               end: dt.date | None = None) -> q.Window:
    """The requested window clipped to what is stored; `days` counts back from the last stored session."""
    span = q.date_span(engine, symbol)
    if span is None:
        raise NotFound(f"no stored history for symbol {symbol!r}; fill it with a backfill --symbol {symbol}")
    first, last = span
    hi = min(end or last, last)
    if start is not None:
        lo = start
    elif days is None:
        lo = first
    else:
        lo = hi - dt.timedelta(days=days - 1)
    return q.Window(symbol, max(lo, first), hi)


def provenance(engine: Engine, symbol: str) -> dict:
    srcs = q.sources(engine, symbol)
    data = sorted({s["data_source"] for s in srcs})
    chains = sorted({s["chain_source"] for s in srcs})
    return {"sources": srcs, "data_sources": data, "chain_sources": chains,
            "synthetic": "synthetic" in data, "modelled": "modelled" in chains}


def _share(k: int, n: int) -> float | None:
    return None if not n else k / n * 100.0


LONG_RANGE_DAYS = 364  # from 1Y on, intraday spot/flip/walls would merge into one band: closes are drawn


def hysteresis_states(closes: list[dict]) -> list[str]:
    """Per close, the regime that holds under the rule store.queries.regime_changes counts: the last
    POSITIVE or NEGATIVE close's (NEUTRAL until the window's first one)."""
    state, out = "NEUTRAL", []
    for c in closes:
        if c["regime"] in ("POSITIVE", "NEGATIVE"):
            state = c["regime"]
        out.append(state)
    return out


def _bucket_ends(rows: list, k: int) -> list:
    """The rows that end each chart bucket of k sessions (every row when the chart is per session or
    snapshot), so the lines show real close values where the bars show averages."""
    if k <= 1:
        return rows
    return [r for i, r in enumerate(rows) if (i + 1) % k == 0 or i == len(rows) - 1]


def gex_history(engine: Engine, w: q.Window, max_points: int = q.MAX_POINTS) -> dict:
    ov = q.gex_overview(engine, w)
    series, k = q.gex_series(engine, w, max_points)
    closes = q.session_closes(engine, w)
    for c, state in zip(closes, hysteresis_states(closes)):
        c["held_regime"] = state
    changes = q.count_regime_changes(engine, w)
    n = int(ov["snapshots"] or 0)
    latest = ov["latest"] or {}
    return {
        "symbol": w.symbol, "start": w.d_lo, "end": w.d_hi,
        "cards": {
            "current_net_gex": latest.get("net_gex"),
            "current_regime": latest.get("regime"),
            "current_mm_state": latest.get("mm_state"),
            "current_timestamp": latest.get("timestamp"),
            "spot_price": latest.get("spot_price"),
            "flip_point": latest.get("flip_point"),
            "call_wall": latest.get("call_wall"),
            "put_wall": latest.get("put_wall"),
            "avg_net_gex": ov["avg_net_gex"],
            "min_net_gex": ov["min_net_gex"],
            "max_net_gex": ov["max_net_gex"],
            "pct_positive": _share(ov["positive"], n),
            "pct_negative": _share(ov["negative"], n),
            "pct_neutral": _share(ov["neutral"], n),
            "regime_changes": changes["at_closes"],
            "snapshot_regime_flips": changes["snapshot_flips"],
            "sessions": len(closes),
            "snapshots": n,
        },
        "series": series,
        "sessions_per_point": k,
        # From 1Y on the lines are drawn at session closes (at the bucket's last close when bars average).
        "close_lines": (w.end - w.start).days >= LONG_RANGE_DAYS,
        "closes": _bucket_ends(closes, k),
        "regime_changes": q.regime_changes(engine, w, limit=50),
        "timeline": q.daily_timeline(engine, w, limit=40),
    }


# Ratios (put/call, ATM IV) whose standard deviation over the window is under 1% of their mean are
# treated as constant: a correlation with them would measure noise (the chain model before its 2011-2022
# calibration held the put/call mix almost fixed, 0.808-0.819 over ten SPY years; since, the put share
# rises with volatility and the ratio spans 0.67-1.02, sd 8% of its mean). Price and net GEX are not
# tested: a calm month moves SPY's price by as little as 0.4% sd, and that variation is real.
NEAR_CONSTANT_CV = 0.01
RATIO_SERIES = {"pcr": "put/call ratio", "iv": "ATM IV"}


def _cv(n: int, sxx: float | None, mean: float | None) -> float | None:
    """sd / |mean| from the centred sum of squares (population sd: a description, not an estimate)."""
    if not n or sxx is None or not mean:
        return None
    return math.sqrt(max(sxx, 0.0) / n) / abs(mean)


def near_constant(sums: dict, means: dict) -> dict[str, float]:
    """{series: its sd/mean} for the ratio series that are near-constant in the window."""
    lv = sums["levels:pcr-iv"]  # one pair holds both ratios' centred sums
    out = {}
    for name, sxx, sx in (("pcr", lv["sxx"], lv["sx"]), ("iv", lv["syy"], lv["sy"])):
        # Centred on the window mean: sxx - sx^2/n is the sum of squares about these rows' own mean.
        ss = None if sxx is None else sxx - (sx or 0.0) ** 2 / lv["n"] if lv["n"] else None
        cv = _cv(lv["n"], ss, means[name])
        if cv is not None and cv < NEAR_CONSTANT_CV:
            out[name] = cv
    return out


def correlations(engine: Engine, w: q.Window, means: dict | None = None) -> list[dict]:
    """Pearson r of levels and of changes per pair; a pair with a near-constant ratio is not
    correlated (r None) and says why in `omitted`. means: {'pcr', 'iv'} window means (gamma_stats)."""
    sums = q.correlation_sums(engine, w)
    flat = near_constant(sums, means) if means else {}
    out = []
    for a, b, _, _ in q.CORR_PAIRS:
        lv, ch = sums[f"levels:{a}-{b}"], sums[f"changes:{a}-{b}"]
        why = next((f"{RATIO_SERIES[x]} nearly constant (sd {flat[x] * 100:.2f}% of its mean)" for x in (a, b)
                    if x in flat), None)
        out.append({
            "pair": f"{a}-{b}",
            "levels": None if why else stats.pearson_from_sums(lv["n"], lv["sx"] or 0, lv["sy"] or 0, lv["sxx"] or 0, lv["syy"] or 0, lv["sxy"] or 0),
            "levels_n": lv["n"],
            "changes": None if why else stats.pearson_from_sums(ch["n"], ch["sx"] or 0, ch["sy"] or 0, ch["sxx"] or 0, ch["syy"] or 0, ch["sxy"] or 0),
            "changes_n": ch["n"],
            "omitted": why,
        })
    return out


def range_label(days: int | None, w: q.Window, custom: bool = False) -> str:
    """The picked range as its button says it (3M, All); the dates of a start/end or unlisted window."""
    for label, n in RANGES:
        if n == days and not custom:
            return label
    return f"{w.d_lo} → {w.d_hi}"


def gamma(engine: Engine, w: q.Window, max_points: int = q.MAX_POINTS, label: str = "") -> dict:
    series, k = q.gamma_series(engine, w, max_points)
    st = q.gamma_stats(engine, w)
    st["pct_positive"] = _share(st["positive"], st["snapshots"] or 0)
    st["pct_negative"] = _share(st["negative"], st["snapshots"] or 0)
    st["range"] = label or range_label(None, w, custom=True)
    srcs = q.window_chain_sources(engine, w)
    modelled = srcs.get("modelled", 0)
    return {
        "symbol": w.symbol, "start": w.d_lo, "end": w.d_hi,
        "series": series, "sessions_per_point": k,
        "stats": st,
        # Sessions of the window whose chain was modelled from prices (PCR and IV are then model outputs).
        "modelled_sessions": modelled, "sessions": sum(srcs.values()),
        "correlations": correlations(engine, w, {"pcr": st["avg_pcr"], "iv": st["avg_iv"]}),
        "timeline": q.daily_timeline(engine, w, limit=30),
    }


def _pattern_row(r: dict) -> dict:
    wr = stats.wilson(r["wins"], r["wins"] + r["losses"])
    return {
        "pattern": r["pattern"], "signals": r["signals"], "resolved": r["resolved"], "wins": r["wins"],
        "losses": r["losses"], "win_rate": None if wr.p is None else wr.p * 100.0,
        "win_rate_ci": [None if wr.low is None else wr.low * 100.0, None if wr.high is None else wr.high * 100.0],
        "avg_confidence": r["avg_confidence"],
        "avg_win": r["avg_win"], "avg_loss": r["avg_loss"],
        "expectancy": stats.expectancy(r["dir_wins"], r["dir_losses"], r["avg_win"], r["avg_loss"]),
        "directional_resolved": r["dir_wins"] + r["dir_losses"],
        "avg_move_5d": r["avg_move_5d"], "last_timestamp": r["last_ts"],
    }


ROLLING_WINDOWS = (20, 50, 100)
DEFAULT_ROLLING = 50


def _pct(p: float | None) -> float | None:
    return None if p is None else p * 100.0


def rolling_win_rate(resolved: list[dict], n: int) -> list[dict]:
    """Per resolved signal (oldest first): the win rate of the last n resolved signals with its Wilson 95%
    interval (None until n have resolved), their mean confidence (over those that had one), and the
    cumulative win rate. A window of signals, not of months: a month held 3 to 15 signals, so the
    monthly rate swung 0-100% on noise."""
    out, wins, cum = [], 0, 0
    conf_sum, conf_n = 0.0, 0
    for i, r in enumerate(resolved):
        ok = int(r["signal_correct"])
        wins += ok
        cum += ok
        if r["confidence_score"] is not None:
            conf_sum, conf_n = conf_sum + r["confidence_score"], conf_n + 1
        if i >= n:
            old = resolved[i - n]
            wins -= int(old["signal_correct"])
            if old["confidence_score"] is not None:
                conf_sum, conf_n = conf_sum - old["confidence_score"], conf_n - 1
        full = i + 1 >= n
        w = stats.wilson(wins, n) if full else None
        out.append({"timestamp": r["timestamp"], "pattern": r["pattern"], "signal_correct": ok,
                    "window_wins": wins if full else None, "window_n": n if full else None,
                    "win_rate": _pct(w.p) if w else None, "ci_low": _pct(w.low) if w else None,
                    "ci_high": _pct(w.high) if w else None,
                    "window_avg_confidence": conf_sum / conf_n if full and conf_n else None,
                    "window_rated": conf_n if full else None,
                    "cumulative_win_rate": cum / (i + 1) * 100.0})
    return out


def calibration_rows(engine: Engine, symbol: str) -> list[dict]:
    rows = []
    for r in sq.calibration(engine, symbol):
        w = stats.wilson(r["wins"], r["resolved"])
        label = "no confidence" if r["low"] is None else f"{r['low']}–{r['high']}%"
        rows.append({**r, "bucket": label, "win_rate": _pct(w.p), "ci_low": _pct(w.low), "ci_high": _pct(w.high)})
    return rows


def psychology(engine: Engine, symbol: str, recent: int = 25, window: int = DEFAULT_ROLLING) -> dict:
    ov = sq.signals_overview(engine, symbol)
    outcomes = sq.resolved_outcomes(engine, symbol)
    kind, length = stats.current_streak(outcomes)
    best_w, best_l = stats.longest_streaks(outcomes)
    resolved = ov["wins"] + ov["losses"]
    wr = stats.wilson(ov["wins"], resolved)
    rated = stats.wilson(ov["rated_wins"], ov["rated_resolved"])
    return {
        "symbol": symbol,
        "overview": {
            "total_signals": int(ov["total_signals"] or 0), "resolved": resolved,
            "pending": int(ov["total_signals"] or 0) - int(ov["resolved"] or 0),
            "wins": ov["wins"], "losses": ov["losses"],
            "win_rate": _pct(wr.p), "win_rate_ci": [_pct(wr.low), _pct(wr.high)],
            "avg_confidence": ov["avg_confidence"], "with_confidence": ov["with_confidence"],
            # The same signals both ways: resolved signals that had a confidence, its mean and their win rate.
            "rated_resolved": ov["rated_resolved"], "rated_avg_confidence": ov["rated_avg_confidence"],
            "rated_win_rate": _pct(rated.p), "rated_win_rate_ci": [_pct(rated.low), _pct(rated.high)],
            "patterns": int(ov["patterns"] or 0),
            "current_streak": length, "current_streak_type": kind,
            "longest_win_streak": best_w, "longest_loss_streak": best_l,
            "first_timestamp": ov["first_ts"], "last_timestamp": ov["last_ts"],
        },
        "by_pattern": [_pattern_row(r) for r in sq.signals_by_pattern(engine, symbol)],
        "calibration": calibration_rows(engine, symbol),
        "rolling_window": window,
        "chart": rolling_win_rate(sq.resolved_series(engine, symbol), window),
        "recent": sq.recent_signals(engine, symbol, limit=recent),
    }


def _odds(k: int, n: int) -> dict:
    p = stats.wilson(k, n)
    return {"k": k, "n": n, "p": None if p.p is None else p.p * 100.0,
            "ci_low": None if p.low is None else p.low * 100.0, "ci_high": None if p.high is None else p.high * 100.0}


def _horizon_odds(r: dict) -> dict:
    return {f"{h}d": {"up": _odds(r[f"up_{h}"], r[f"n_{h}"]), "down": _odds(r[f"down_{h}"], r[f"n_{h}"]),
                      "avg_move": r[f"avg_{h}"]} for h in sq.HORIZONS}


def probability(engine: Engine, symbol: str) -> dict:
    patterns = [{"pattern": r["pattern"], "signals": r["signals"],
                 "correct": _odds(r["correct"], r["resolved"]), "moves": _horizon_odds(r)}
                for r in sq.pattern_odds(engine, symbol)]
    outcomes = sq.regime_signal_outcomes(engine, symbol)
    regimes = [{"regime": r["regime"], "sessions": r["sessions"],
                "correct": _odds(*outcomes.get(r["regime"], (0, 0))), "moves": _horizon_odds(r)}
               for r in sq.regime_odds(engine, symbol)]
    latest = sq.recent_signals(engine, symbol, limit=1)
    latest_odds = None
    if latest:
        sig = latest[0]
        regime = sq.regime_at(engine, symbol, sig["timestamp"])
        latest_odds = {
            "signal": sig, "regime": regime,
            "pattern_odds": next((p for p in patterns if p["pattern"] == sig["primary_regime_type"]), None),
            "regime_odds": next((r for r in regimes if r["regime"] == regime), None),
        }
    return {"symbol": symbol, "patterns": patterns, "regimes": regimes, "latest": latest_odds}
