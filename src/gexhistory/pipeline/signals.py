"""The backfill's signal step: bars and the day's chain in, one regime_signals row (or none) out.

Everything per run is vectorised once (`SignalContext`: RSI on every timeframe for every session,
volume ratios, range contraction, VIX); per batch of sessions (`rows_for_many`) the chains' gamma
structure is one vectorised pass (engine/structure.py), the pattern conditions are
evaluated as arrays, and only the sessions that signal get a SignalInputs and their texts. The rows
come back to compute_sessions, so they are written in the session's own transaction.

Signal time is the session's close snapshot (16:00, or the early close): RSI over bars through the
close, walls and expiry structure of the close chain at the close spot. Two values cannot be read at
the close and are read earlier, as labelled in the columns' docs: the 0DTE gamma (the day's expiry has
expired at the close) is the last pre-close snapshot's, with next week's gamma from the same snapshot.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from gexhistory.calendar import Session, format_ts, sessions_before, sessions_between
from gexhistory.engine import rsi as rsi_mod
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import Conventions, GexSnapshot
from gexhistory.engine.structure import signal_structures
from gexhistory.engine.signals import (GEX_REFERENCE, PATTERNS, SCALE_WINDOW, SignalColumns, SignalInputs, first_two,
                                       pattern_hits, signal_row)
from gexhistory.sources.base import DailyBars, MinuteBars, PriceSource

VIX_SOURCE_PROXY = "atm_iv_proxy"
MIN_SCALE_SESSIONS = 20


def _f(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def fetch_minutes(source: PriceSource, symbol: str, todo: list[Session]) -> tuple[MinuteBars, MinuteBars]:
    """One request for the minutes of the RSI warm-up sessions and of every session from the window's
    first to its last (those between that are not computed included: a session's RSI reads the bars
    that preceded it, whatever else this run computes): (all of them, the window's sessions only)."""
    warm = sessions_before(todo[0].date, rsi_mod.WARMUP_SESSIONS)
    span = sessions_between(todo[0].date, todo[-1].date)
    every = source.minute_bars(symbol, warm + span)
    row = {s.date: k for k, s in enumerate(every.sessions)}
    rows = np.array([row[s.date] for s in todo], dtype=np.intp)
    return every, MinuteBars(symbol, list(todo), every.open[rows], every.close[rows], every.volume[rows],
                             every.source, every.notes)


class SignalContext:
    def __init__(self, source: PriceSource, symbol: str, todo: list[Session], bars: DailyBars,
                 minutes: MinuteBars, conv: Conventions):
        """`minutes`: consecutive sessions (fetch_minutes), the window's among them."""
        self.symbol = symbol
        self.conv = conv
        self.todo_index = {s.date: j for j, s in enumerate(todo)}
        close = minutes.close
        row = {s.date: k for k, s in enumerate(minutes.sessions)}
        at = np.array([row[s.date] for s in todo], dtype=np.intp)
        self.rsi: dict[str, np.ndarray] = {}
        for tf, mpb in rsi_mod.BAR_MINUTES.items():
            self.rsi[tf] = rsi_mod.session_end_rsi(close, mpb, rsi_mod.LOOKBACK[tf])[at]
        idx = bars.index_of()
        rows = np.array([idx[s.date] for s in todo])
        self.rsi["1d"] = rsi_mod.rsi_at(bars.close, rows, lookback=rsi_mod.LOOKBACK["1d"])
        self.score = rsi_mod.rsi_score(self.rsi)
        self.overbought, self.oversold = rsi_mod.aligned_counts(self.rsi)
        contraction = (np.full(len(bars), np.nan) if bars.close_only
                       else rsi_mod.range_contraction(bars.high, bars.low, bars.close))[rows]
        self.coiling = rsi_mod.coiling(self.overbought, self.oversold, contraction)
        self.volume_ratio = rsi_mod.volume_ratio(bars.volume)[rows]
        self.vix: dict[dt.date, float] = {}
        vix_fn = getattr(source, "vix_bars", None)
        if vix_fn is not None:
            before = sessions_before(todo[0].date, 1)  # the day-change of the first session needs its eve
            vb = vix_fn(before[0].date if before else todo[0].date, todo[-1].date)
            if vb is not None:
                self.vix = {d: float(c) for d, c in zip(vb.dates, vb.close) if np.isfinite(c)}
        self.vix_label = getattr(source, "vix_label", "I:VIX")

    def _vix(self, day: dt.date, prev_day: dt.date | None, close_iv: dict) -> tuple:
        if day in self.vix and prev_day in self.vix:
            return self.vix[day], self.vix[prev_day], self.vix_label
        iv, prev = close_iv.get(day), close_iv.get(prev_day)
        if iv is None:
            return None, None, None
        return iv * 100.0, (prev * 100.0 if prev is not None else None), VIX_SOURCE_PROXY

    def rows_for(self, s: Session, snaps: list[GexSnapshot], chain: OptionChain, prior_net_gex: list[float],
                 prev_day: dt.date | None, close_iv: dict, data_source: str, chain_source: str) -> list[dict]:
        """The session's regime_signals rows: one, or none on a NEUTRAL day. `prior_net_gex`: the close
        net GEX of the sessions before it whose median sets the gamma scale."""
        history = np.append(np.asarray(prior_net_gex, dtype=float), snaps[-1].net_gex)
        return self.rows_for_many([s], [snaps], [chain], history, [len(prior_net_gex)], [prev_day], close_iv,
                                  data_source, [chain_source], scale_window=len(prior_net_gex))[0]

    def rows_for_many(self, sessions: list[Session], snaps: list[list[GexSnapshot]], chains: list[OptionChain],
                      close_net_gex, positions, prev_days: list[dt.date | None], close_iv: dict, data_source: str,
                      chain_sources: list[str], scale_window: int = SCALE_WINDOW) -> list[list[dict]]:
        """rows_for of each session of a batch (its regime_signals rows: one, or none on a NEUTRAL day).

        sessions, snaps, chains, prev_days, chain_sources: one entry per session, in date order.
        close_net_gex: the close net GEX of every session in date order, the context sessions before the
        window included; positions[j]: the index of sessions[j] in it (its prior sessions are the up to
        `scale_window` entries before). close_iv: date -> close ATM IV, for the VIX proxy.
        A session's rows do not depend on the other sessions of the batch.
        """
        n = len(sessions)
        if n == 0:
            return []
        rows = np.array([self.todo_index[s.date] for s in sessions])
        close = [x[-1] for x in snaps]
        pre = [x[-2] if len(x) > 1 else x[-1] for x in snaps]
        spot = np.array([c.spot for c in close], dtype=float)
        net = np.array([c.net_gex for c in close], dtype=float)
        st = signal_structures(chains, spot, [s.close for s in sessions], self.conv.dte_window, self.conv.r,
                               self.conv.q)
        typical = typical_abs_gex(close_net_gex, positions, scale_window)
        enough = np.minimum(np.asarray(positions), scale_window) >= MIN_SCALE_SESSIONS
        typical = np.where(enough, typical, np.abs(net))
        with np.errstate(invalid="ignore"):
            scale = np.where(typical > 0, typical / GEX_REFERENCE, 1.0)
        vix = [self._vix(s.date, p, close_iv) for s, p in zip(sessions, prev_days)]
        cols = SignalColumns(
            spot=spot, net_gamma=net, flip=_floats(c.flip_point for c in close), rsi_score=self.score[rows],
            overbought=self.overbought[rows].astype(float), oversold=self.oversold[rows].astype(float),
            coiling=self.coiling[rows].astype(float), volume_ratio=self.volume_ratio[rows],
            vix=_floats(v[0] for v in vix), vix_previous=_floats(v[1] for v in vix),
            net_gamma_this_week=st.net_this_week, zero_dte_gamma=_floats(p.zero_dte_gamma for p in pre),
            pin_next_week=_floats(p.gamma_expiring_next_week for p in pre), call_wall=st.call_wall,
            put_wall=st.put_wall, call_wall_any=st.call_wall_any, put_wall_any=st.put_wall_any,
            call_soon_ratio=st.call_soon_ratio, put_soon_ratio=st.put_soon_ratio,
            put_next_ratio=st.put_next_ratio, magnet_above_strength=st.magnet_above_strength, scale=scale,
        )
        first, second = first_two(pattern_hits(cols))
        out: list[list[dict]] = [[] for _ in range(n)]
        created = format_ts(dt.datetime.now(sessions[0].close.tzinfo))
        for j in np.flatnonzero(first < len(PATTERNS)):
            s, c, p, i, sj = sessions[j], close[j], pre[j], rows[j], st.scalars(j)
            x = SignalInputs(
                symbol=self.symbol, spot=c.spot, net_gamma=c.net_gex, flip=c.flip_point,
                rsi={tf: _f(self.rsi[tf][i]) for tf in rsi_mod.TIMEFRAMES},
                rsi_score=_f(self.score[i]), overbought=int(self.overbought[i]), oversold=int(self.oversold[i]),
                coiling=bool(self.coiling[i]), volume_ratio=_f(self.volume_ratio[i]),
                vix=vix[j][0], vix_previous=vix[j][1], vix_source=vix[j][2],
                gamma_this_week=c.gamma_expiring_this_week, net_gamma_this_week=sj["net_this_week"],
                gamma_next_week=c.gamma_expiring_next_week,
                zero_dte_gamma=p.zero_dte_gamma, pin_next_week=p.gamma_expiring_next_week,
                **{name: sj[name] for name in _STRUCTURE_INPUTS},
                scale=float(scale[j]), session_date=s.date,
            )
            row = signal_row(x, (PATTERNS[first[j]], PATTERNS[second[j]] if second[j] < len(PATTERNS) else None))
            row.update({"timestamp": format_ts(s.close), "created_at": created, "data_source": data_source,
                        "chain_source": chain_sources[j]})
            out[j] = [row]
        return out


# SignalInputs fields read straight from the structure columns of the same name.
_STRUCTURE_INPUTS = ("call_wall", "call_wall_gamma", "put_wall", "put_wall_gamma", "call_wall_any", "put_wall_any",
                     "call_soon_ratio", "call_first_expiry", "call_first_dte", "put_soon_ratio", "put_next_ratio",
                     "put_first_expiry", "put_first_dte", "magnet_above", "magnet_above_strength", "magnet_below",
                     "magnet_below_strength", "magnet_expiry")


def _floats(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def typical_abs_gex(close_net_gex, positions, window: int = SCALE_WINDOW) -> np.ndarray:
    """Per position p, the median |close net GEX| of the up to `window` entries before p (what the
    gamma thresholds scale with); NaN with fewer than MIN_SCALE_SESSIONS of them. Each median is
    np.median of its own window, so it does not depend on the other positions."""
    gex = np.abs(np.asarray(close_net_gex, dtype=float))
    pos = np.asarray(positions, dtype=np.intp)
    out = np.full(pos.size, np.nan)
    length = np.minimum(pos, window)
    for n in np.unique(length[length >= MIN_SCALE_SESSIONS]):
        sel = np.flatnonzero(length == n)
        out[sel] = np.median(gex[(pos[sel] - n)[:, None] + np.arange(n)], axis=1)
    return out
