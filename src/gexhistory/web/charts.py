"""Plotly figures as plain dicts (the browser's plotly.min.js draws them; no Python plotly import)."""

from __future__ import annotations

REGIME_COLORS = {"POSITIVE": "#22c55e", "NEGATIVE": "#ef4444", "NEUTRAL": "#eab308"}
SPOT, FLIP, CALL_WALL, PUT_WALL, IV, ACCENT = "#e5e7eb", "#a78bfa", "#38bdf8", "#fb923c", "#f472b6", "#60a5fa"
GRID, TEXT, BG = "#1e2733", "#9aa7b4", "#131a23"


def _layout(**extra) -> dict:
    base = {
        "paper_bgcolor": BG, "plot_bgcolor": BG,
        "font": {"color": TEXT, "size": 11, "family": "Inter, Segoe UI, Roboto, sans-serif"},
        "margin": {"l": 64, "r": 64, "t": 28, "b": 36},
        "hovermode": "x unified",
        "hoverlabel": {"bgcolor": "#111827", "bordercolor": "#374151", "font": {"color": "#e5e7eb"}},
        "legend": {"orientation": "h", "x": 0, "y": 1.12, "bgcolor": "rgba(0,0,0,0)"},
        "xaxis": {"gridcolor": GRID, "zeroline": False, "showspikes": True, "spikecolor": "#4b5563",
                  "spikethickness": 1},
        "yaxis": {"gridcolor": GRID, "zerolinecolor": "#374151"},
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return base


def _time_axis(intraday: bool) -> dict:
    breaks = [{"bounds": ["sat", "mon"]}]
    if intraday:
        breaks.append({"bounds": [16.01, 9.5], "pattern": "hour"})
    return {"type": "date", "rangebreaks": breaks}


def _gex_b(rows: list[dict], key: str = "net_gex") -> list:
    return [None if r.get(key) is None else r[key] / 1e9 for r in rows]


def gex_history(rows: list[dict], k: int) -> dict:
    x = [r["timestamp"] for r in rows]
    colors = [REGIME_COLORS.get(r.get("regime"), "#6b7280") for r in rows]
    data = [
        {"type": "bar", "name": "Net GEX ($B)", "x": x, "y": _gex_b(rows), "marker": {"color": colors},
         "yaxis": "y", "hovertemplate": "%{y:$.2f}B"},
        {"type": "scatter", "mode": "lines", "name": "Spot", "x": x, "y": [r["spot_price"] for r in rows],
         "yaxis": "y2", "line": {"color": SPOT, "width": 1.6}, "hovertemplate": "$%{y:.2f}"},
        {"type": "scatter", "mode": "lines", "name": "Flip", "x": x, "y": [r["flip_point"] for r in rows],
         "yaxis": "y2", "line": {"color": FLIP, "width": 1.2, "dash": "dash"}, "connectgaps": False,
         "hovertemplate": "$%{y:.2f}"},
        {"type": "scatter", "mode": "lines", "name": "Call wall", "x": x, "y": [r["call_wall"] for r in rows],
         "yaxis": "y2", "line": {"color": CALL_WALL, "width": 1, "dash": "dot", "shape": "hv"},
         "hovertemplate": "$%{y:.2f}"},
        {"type": "scatter", "mode": "lines", "name": "Put wall", "x": x, "y": [r["put_wall"] for r in rows],
         "yaxis": "y2", "line": {"color": PUT_WALL, "width": 1, "dash": "dot", "shape": "hv"},
         "hovertemplate": "$%{y:.2f}"},
    ]
    layout = _layout(
        xaxis=_time_axis(k == 0), bargap=0.05,
        yaxis={"title": {"text": "Net GEX ($B per 1% move)"}, "ticksuffix": "B", "tickformat": ",.0f"},
        yaxis2={"title": {"text": "Price"}, "overlaying": "y", "side": "right", "showgrid": False,
                "tickprefix": "$"},
    )
    return {"data": data, "layout": layout}


def gamma_trends(rows: list[dict], k: int) -> dict:
    x = [r["timestamp"] for r in rows]
    data = [
        {"type": "bar", "name": "Net GEX ($B)", "x": x, "y": _gex_b(rows),
         "marker": {"color": [REGIME_COLORS.get(r.get("regime"), "#6b7280") for r in rows]},
         "hovertemplate": "%{y:$.2f}B"},
        {"type": "scatter", "mode": "lines", "name": "ATM IV (30d)", "x": x,
         "y": [None if r["implied_volatility"] is None else r["implied_volatility"] * 100 for r in rows],
         "yaxis": "y2", "line": {"color": IV, "width": 1.6}, "hovertemplate": "%{y:.1f}%"},
    ]
    layout = _layout(xaxis=_time_axis(k == 0), bargap=0.05,
                     yaxis={"title": {"text": "Net GEX ($B)"}, "ticksuffix": "B", "tickformat": ",.0f"},
                     yaxis2={"title": {"text": "ATM IV"}, "overlaying": "y", "side": "right", "showgrid": False,
                             "ticksuffix": "%", "tickformat": ".1f"})
    return {"data": data, "layout": layout}


def gamma_flip(rows: list[dict], k: int) -> dict:
    x = [r["timestamp"] for r in rows]
    data = [
        {"type": "scatter", "mode": "lines", "name": "Distance to flip (%)", "x": x,
         "y": [r["distance_to_flip_pct"] for r in rows], "line": {"color": FLIP, "width": 1.4},
         "fill": "tozeroy", "fillcolor": "rgba(167,139,250,0.12)", "hovertemplate": "%{y:.2f}%"},
        {"type": "scatter", "mode": "lines", "name": "Put/call OI ratio", "x": x,
         "y": [r["put_call_ratio"] for r in rows], "yaxis": "y2", "line": {"color": PUT_WALL, "width": 1.2},
         "hovertemplate": "%{y:.2f}"},
    ]
    layout = _layout(xaxis=_time_axis(k == 0),
                     yaxis={"title": {"text": "(spot - flip) / spot"}, "ticksuffix": "%"},
                     yaxis2={"title": {"text": "Put/call"}, "overlaying": "y", "side": "right", "showgrid": False,
                             "tickformat": ".3f"})
    return {"data": data, "layout": layout}


def win_rate(months: list[dict]) -> dict:
    x = [m["month"] for m in months]
    data = [
        {"type": "bar", "name": "Resolved signals", "x": x, "y": [m["resolved"] for m in months],
         "yaxis": "y2", "marker": {"color": "rgba(96,165,250,0.35)"}, "hovertemplate": "%{y}"},
        {"type": "scatter", "mode": "lines+markers", "name": "Monthly win rate", "x": x,
         "y": [m["win_rate"] for m in months], "line": {"color": REGIME_COLORS["POSITIVE"], "width": 1.4},
         "marker": {"size": 4}, "hovertemplate": "%{y:.1f}%"},
        {"type": "scatter", "mode": "lines", "name": "Cumulative win rate", "x": x,
         "y": [m["cumulative_win_rate"] for m in months], "line": {"color": SPOT, "width": 2},
         "hovertemplate": "%{y:.1f}%"},
    ]
    layout = _layout(xaxis={"type": "category", "tickangle": -45, "nticks": 24},
                     yaxis={"title": {"text": "Win rate"}, "ticksuffix": "%", "range": [0, 100]},
                     yaxis2={"title": {"text": "Signals"}, "overlaying": "y", "side": "right", "showgrid": False,
                             "tickformat": "d", "rangemode": "tozero"},
                     shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 50, "y1": 50,
                              "line": {"color": "#4b5563", "dash": "dot", "width": 1}}])
    return {"data": data, "layout": layout}


def _err(o: dict) -> tuple:
    if o["p"] is None:
        return None, None, None
    return o["p"], o["ci_high"] - o["p"], o["p"] - o["ci_low"]


def odds_bars(groups: list[dict], key: str, horizon: str = "5d") -> dict:
    """P(up) and P(down) over `horizon` per pattern/regime, with Wilson 95% error bars."""
    x = [g[key] for g in groups]
    data = []
    for side, color in (("up", REGIME_COLORS["POSITIVE"]), ("down", REGIME_COLORS["NEGATIVE"])):
        vals = [_err(g["moves"][horizon][side]) for g in groups]
        data.append({"type": "bar", "name": f"P({side}, {horizon})", "x": x, "y": [v[0] for v in vals],
                     "marker": {"color": color, "opacity": 0.85},
                     "error_y": {"type": "data", "symmetric": False, "array": [v[1] for v in vals],
                                 "arrayminus": [v[2] for v in vals], "color": "#9ca3af", "thickness": 1},
                     "customdata": [g["moves"][horizon][side]["n"] for g in groups],
                     "hovertemplate": "%{y:.1f}% (n=%{customdata})"})
    long_names = max((len(str(v)) for v in x), default=0) > 10
    layout = _layout(barmode="group", hovermode="closest",
                     margin={"b": 110 if long_names else 36},
                     xaxis={"type": "category", "tickangle": -30 if long_names else 0, "automargin": True},
                     yaxis={"title": {"text": "Probability (Wilson 95%)"}, "ticksuffix": "%", "range": [0, 100]},
                     shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 50, "y1": 50,
                              "line": {"color": "#4b5563", "dash": "dot", "width": 1}}])
    return {"data": data, "layout": layout}
