"""Plotly figures as plain dicts (the browser's plotly.min.js draws them; no Python plotly import)."""

from __future__ import annotations

REGIME_COLORS = {"POSITIVE": "#22c55e", "NEGATIVE": "#ef4444", "NEUTRAL": "#eab308"}
SPOT, FLIP, CALL_WALL, PUT_WALL, IV, ACCENT = "#e5e7eb", "#a78bfa", "#38bdf8", "#fb923c", "#f472b6", "#60a5fa"
GRID, TEXT, BG = "#1e2733", "#9aa7b4", "#131a23"
SMALL_N = "#6b7280"


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


def gex_axis(**extra) -> dict:
    """A $B axis whose tick labels are distinct: ',.0f' printed 1.5 and 2.0 both as '2B'; '~g' keeps
    the digits the ticks need (0.5B, 1B, 1.5B) and drops trailing zeros."""
    return {"tickprefix": "$", "ticksuffix": "B", "tickformat": "~g", **extra}


REGIME_ORDER = ("POSITIVE", "NEGATIVE", "NEUTRAL")


def _by_regime(x: list, y: list, regimes: list) -> list[tuple[str, list]]:
    """One y per regime over the full x (None elsewhere): a trace per regime gets a fixed legend colour,
    and the shared x keeps every bar the same width."""
    return [(reg, [v if r == reg else None for v, r in zip(y, regimes)]) for reg in REGIME_ORDER]


def gex_history(rows: list[dict], k: int, closes: list[dict], close_lines: bool) -> dict:
    """Net GEX bars (top, one trace per regime), price with flip and walls (middle, same x), and a band
    of the regime held at each session close (bottom). close_lines: spot/flip/walls at session closes
    (walls start hidden; the page's toggle and the legend show them)."""
    x = [r["timestamp"] for r in rows]
    data = []
    for reg, y in _by_regime(x, _gex_b(rows), [r.get("regime") for r in rows]):
        data.append({"type": "bar", "name": f"Net GEX · {reg}", "x": x, "y": y,
                     "marker": {"color": REGIME_COLORS[reg]}, "yaxis": "y", "legendgroup": reg,
                     "hovertemplate": "%{y:$.2f}B"})
    src = closes if close_lines else rows
    lx = [r["timestamp"] for r in src]
    at = " (close)" if close_lines else ""
    walls = "legendonly" if close_lines else True
    for name, key, line, vis in (
            ("Spot", "spot_price", {"color": SPOT, "width": 1.6}, True),
            ("Flip", "flip_point", {"color": FLIP, "width": 1.2, "dash": "dash"}, True),
            ("Call wall", "call_wall", {"color": CALL_WALL, "width": 1, "dash": "dot", "shape": "hv"}, walls),
            ("Put wall", "put_wall", {"color": PUT_WALL, "width": 1, "dash": "dot", "shape": "hv"}, walls)):
        data.append({"type": "scatter", "mode": "lines", "name": name + at, "x": lx, "y": [r[key] for r in src],
                     "yaxis": "y2", "line": line, "connectgaps": False, "visible": vis,
                     "meta": "wall" if "wall" in key else key, "hovertemplate": "$%{y:.2f}"})
    # The band, under every bar: the regime held at that bar's session close (a NEUTRAL close keeps the
    # one before). A bucket's bar is stamped with its last session's close, which `closes` holds.
    held = {c["date"]: c["held_regime"] for c in closes}
    for reg, y in _by_regime(x, [1] * len(x), [held.get(t[:10]) for t in x]):
        data.append({"type": "bar", "name": f"held regime · {reg}", "x": x, "y": y, "yaxis": "y3",
                     "marker": {"color": REGIME_COLORS[reg]}, "showlegend": False, "legendgroup": reg,
                     "hovertemplate": f"held at the close: {reg}<extra></extra>"})
    layout = _layout(
        xaxis={**_time_axis(k == 0), "anchor": "y3"}, bargap=0.05, barmode="relative", hoversubplots="axis",
        yaxis=gex_axis(title={"text": "Net GEX per 1% move"}, domain=[0.43, 1.0]),
        yaxis2={"title": {"text": "Price"}, "tickprefix": "$", "domain": [0.09, 0.39], "gridcolor": GRID},
        yaxis3={"domain": [0.0, 0.05], "range": [0, 1], "showticklabels": False, "showgrid": False,
                "zeroline": False, "fixedrange": True},
        annotations=[{"text": "regime held at the close", "xref": "paper", "yref": "paper", "x": 0, "y": 0.055,
                      "xanchor": "left", "yanchor": "bottom", "showarrow": False,
                      "font": {"size": 10, "color": TEXT}}],
    )
    return {"data": data, "layout": layout}


def gamma_trends(rows: list[dict], k: int, modelled: bool = False) -> dict:
    x = [r["timestamp"] for r in rows]
    tag = " (modelled)" if modelled else ""
    data = [{"type": "bar", "name": f"Net GEX · {reg}{tag}", "x": x, "y": y, "marker": {"color": REGIME_COLORS[reg]},
             "hovertemplate": "%{y:$.2f}B"} for reg, y in _by_regime(x, _gex_b(rows), [r.get("regime") for r in rows])]
    data += [
        {"type": "scatter", "mode": "lines", "name": "ATM IV (30d)" + tag, "x": x,
         "y": [None if r["implied_volatility"] is None else r["implied_volatility"] * 100 for r in rows],
         "yaxis": "y2", "line": {"color": IV, "width": 1.6}, "hovertemplate": "%{y:.1f}%"},
    ]
    layout = _layout(xaxis=_time_axis(k == 0), bargap=0.05, barmode="relative",
                     yaxis=gex_axis(title={"text": "Net GEX"}),
                     yaxis2={"title": {"text": "ATM IV" + tag}, "overlaying": "y", "side": "right", "showgrid": False,
                             "ticksuffix": "%", "tickformat": ".1f", "tickmode": "auto"})
    return {"data": data, "layout": layout}


def gamma_flip(rows: list[dict], k: int, modelled: bool = False) -> dict:
    """Distance to flip and the put/call OI ratio. The ratio's axis starts at zero: autoscaled, a ratio
    moving in a narrow band (the uncalibrated model's 0.808-0.819) filled the panel and looked volatile."""
    x = [r["timestamp"] for r in rows]
    tag = " (modelled)" if modelled else ""
    data = [
        {"type": "scatter", "mode": "lines", "name": "Distance to flip (%)", "x": x,
         "y": [r["distance_to_flip_pct"] for r in rows], "line": {"color": FLIP, "width": 1.4},
         "fill": "tozeroy", "fillcolor": "rgba(167,139,250,0.12)", "hovertemplate": "%{y:.2f}%"},
        {"type": "scatter", "mode": "lines", "name": "Put/call OI ratio" + tag, "x": x,
         "y": [r["put_call_ratio"] for r in rows], "yaxis": "y2", "line": {"color": PUT_WALL, "width": 1.2},
         "hovertemplate": "%{y:.3f}"},
    ]
    pcr = [r["put_call_ratio"] for r in rows if r["put_call_ratio"] is not None]
    layout = _layout(xaxis=_time_axis(k == 0),
                     yaxis={"title": {"text": "(spot - flip) / spot"}, "ticksuffix": "%"},
                     yaxis2={"title": {"text": "Put/call" + tag}, "overlaying": "y", "side": "right", "showgrid": False,
                             "range": [0, max(pcr, default=1.0) * 1.25], "tickformat": ".2f", "tickmode": "auto"})
    return {"data": data, "layout": layout}


def win_rate(points: list[dict], n: int) -> dict:
    """Rolling win rate over the last n resolved signals with its Wilson 95% band, the same signals'
    mean confidence, and the cumulative rate; one point per resolved signal, on a date axis."""
    x = [p["timestamp"] for p in points]
    data = [
        {"type": "scatter", "mode": "lines", "name": "95% interval", "x": x, "y": [p["ci_high"] for p in points],
         "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "name": f"Wilson 95% interval (n={n})", "x": x,
         "y": [p["ci_low"] for p in points], "fill": "tonexty", "fillcolor": "rgba(34,197,94,0.15)",
         "line": {"width": 0}, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "name": f"Win rate, last {n} signals", "x": x,
         "y": [p["win_rate"] for p in points], "line": {"color": REGIME_COLORS["POSITIVE"], "width": 1.8},
         "customdata": [[p["ci_low"], p["ci_high"]] for p in points],
         "hovertemplate": "%{y:.1f}% [%{customdata[0]:.0f}–%{customdata[1]:.0f}%]"},
        {"type": "scatter", "mode": "lines", "name": f"Mean confidence, same {n}", "x": x,
         "y": [p["window_avg_confidence"] for p in points], "line": {"color": ACCENT, "width": 1.2, "dash": "dot"},
         "hovertemplate": "%{y:.1f}%"},
        {"type": "scatter", "mode": "lines", "name": "Cumulative win rate", "x": x,
         "y": [p["cumulative_win_rate"] for p in points], "line": {"color": SPOT, "width": 1.4},
         "hovertemplate": "%{y:.1f}%"},
    ]
    layout = _layout(xaxis={"type": "date", "automargin": True},
                     yaxis={"title": {"text": "Win rate"}, "ticksuffix": "%", "range": [0, 100]},
                     margin={"b": 48},
                     shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 50, "y1": 50,
                              "line": {"color": "#4b5563", "dash": "dot", "width": 1}}])
    return {"data": data, "layout": layout}


MIN_N = 10  # a rate from fewer observations is drawn grey and named too small to read


def _err(o: dict) -> tuple:
    if o["p"] is None:
        return None, None, None
    return o["p"], o["ci_high"] - o["p"], o["p"] - o["ci_low"]


def odds_bars(groups: list[dict], key: str, horizon: str = "5d", unit: str = "signals") -> dict:
    """P(up) and P(down) over `horizon` per pattern/regime, with Wilson 95% error bars. A group with
    fewer than MIN_N observations is drawn grey (its bar and its interval), its label says n."""
    x = [f"{g[key]}<br>n={g['moves'][horizon]['up']['n']:,} {unit}" for g in groups]
    data = []
    for side, color in (("up", REGIME_COLORS["POSITIVE"]), ("down", REGIME_COLORS["NEGATIVE"])):
        odds = [g["moves"][horizon][side] for g in groups]
        vals = [_err(o) for o in odds]
        small = [o["n"] < MIN_N for o in odds]
        data.append({"type": "bar", "name": f"P({side}, {horizon})", "x": x, "y": [v[0] for v in vals],
                     "marker": {"color": [SMALL_N if sm else color for sm in small],
                                "opacity": [0.35 if sm else 0.85 for sm in small]},
                     "error_y": {"type": "data", "symmetric": False, "array": [v[1] for v in vals],
                                 "arrayminus": [v[2] for v in vals], "color": "#9ca3af", "thickness": 1},
                     "customdata": [[o["n"], f" (under {MIN_N}: too few to read)" if sm else ""]
                                    for o, sm in zip(odds, small)],
                     "hovertemplate": "%{y:.1f}% (n=%{customdata[0]})%{customdata[1]}"})
    long_names = max((len(str(g[key])) for g in groups), default=0) > 10
    layout = _layout(barmode="group", hovermode="closest",
                     margin={"b": 120 if long_names else 48},
                     xaxis={"type": "category", "tickangle": -30 if long_names else 0, "automargin": True},
                     yaxis={"title": {"text": "Probability (Wilson 95%)"}, "ticksuffix": "%", "range": [0, 100]},
                     shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 50, "y1": 50,
                              "line": {"color": "#4b5563", "dash": "dot", "width": 1}}])
    return {"data": data, "layout": layout}
