"""The backfill's signal step: bars and the day's chain in, one regime_signals row (or none) out.

Everything per run is vectorised once (`SignalContext`: RSI on every timeframe for every session,
volume ratios, range contraction, VIX); per session only the chain's gamma structure is computed.
The rows come back to compute_sessions, so they are written in the session's own transaction.

Signal time is the session's close snapshot (16:00, or the early close): RSI over bars through the
close, walls and expiry structure of the close chain at the close spot. Two values cannot be read at
the close and are read earlier, as labelled in the columns' docs: the 0DTE gamma (the day's expiry has
expired at the close) is the last pre-close snapshot's, with next week's gamma from the same snapshot.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from gexhistory.calendar import Session, format_ts, sessions_before
from gexhistory.engine import rsi as rsi_mod
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import Conventions, GexSnapshot
from gexhistory.engine.gamma_structure import (gamma_structure, monthly_magnets, net_expiring_by, signal_walls,
                                               wall_expiry)
from gexhistory.engine.signals import GEX_REFERENCE, SignalInputs, signal_row
from gexhistory.sources.base import DailyBars, MinuteBars, PriceSource

VIX_SOURCE_PROXY = "atm_iv_proxy"
MIN_SCALE_SESSIONS = 20


def _f(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def fetch_minutes(source: PriceSource, symbol: str, todo: list[Session]) -> tuple[MinuteBars, MinuteBars]:
    """One request for the window's minutes and the RSI warm-up sessions before it: (all, window only)."""
    warm = sessions_before(todo[0].date, rsi_mod.WARMUP_SESSIONS)
    both = source.minute_bars(symbol, warm + list(todo))
    n = len(warm)
    return both, MinuteBars(symbol, list(todo), both.open[n:], both.close[n:], both.volume[n:], both.source,
                            both.notes)


class SignalContext:
    def __init__(self, source: PriceSource, symbol: str, todo: list[Session], bars: DailyBars,
                 minutes: MinuteBars, conv: Conventions):
        """`minutes`: the window's sessions, preceded by as many warm-up sessions as the source had."""
        self.symbol = symbol
        self.conv = conv
        self.todo_index = {s.date: j for j, s in enumerate(todo)}
        close = minutes.close
        n_warm = close.shape[0] - len(todo)
        self.rsi: dict[str, np.ndarray] = {}
        for tf, mpb in rsi_mod.BAR_MINUTES.items():
            self.rsi[tf] = rsi_mod.session_end_rsi(close, mpb, rsi_mod.LOOKBACK[tf])[n_warm:]
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
        """The session's regime_signals rows: one, or none on a NEUTRAL day."""
        j = self.todo_index[s.date]
        close = snaps[-1]
        pre = snaps[-2] if len(snaps) > 1 else close
        gs = gamma_structure(chain, close.spot, s.close, self.conv.dte_window, self.conv.r, self.conv.q)
        walls = signal_walls(gs)
        cw = wall_expiry(gs, walls.call_above, "call")
        pw = wall_expiry(gs, walls.put_below, "put")
        mag = monthly_magnets(gs)
        prior = np.abs(np.asarray(prior_net_gex, dtype=float))
        typical = float(np.median(prior)) if prior.size >= MIN_SCALE_SESSIONS else abs(close.net_gex)
        vix, vix_prev, vix_src = self._vix(s.date, prev_day, close_iv)
        x = SignalInputs(
            symbol=self.symbol, spot=close.spot, net_gamma=close.net_gex, flip=close.flip_point,
            rsi={tf: _f(self.rsi[tf][j]) for tf in rsi_mod.TIMEFRAMES},
            rsi_score=_f(self.score[j]), overbought=int(self.overbought[j]), oversold=int(self.oversold[j]),
            coiling=bool(self.coiling[j]), volume_ratio=_f(self.volume_ratio[j]),
            vix=vix, vix_previous=vix_prev, vix_source=vix_src,
            gamma_this_week=close.gamma_expiring_this_week,
            net_gamma_this_week=net_expiring_by(gs, s.date + dt.timedelta(days=4 - s.date.weekday())),
            gamma_next_week=close.gamma_expiring_next_week,
            zero_dte_gamma=pre.zero_dte_gamma, pin_next_week=pre.gamma_expiring_next_week,
            call_wall=walls.call_above, call_wall_gamma=walls.call_above_gamma,
            put_wall=walls.put_below, put_wall_gamma=walls.put_below_gamma,
            call_wall_any=walls.call_nearest, put_wall_any=walls.put_nearest,
            call_soon_ratio=cw.soon_ratio, call_first_expiry=cw.first_expiry, call_first_dte=cw.first_dte,
            put_soon_ratio=pw.soon_ratio, put_next_ratio=pw.next_ratio, put_first_expiry=pw.first_expiry,
            put_first_dte=pw.first_dte,
            magnet_above=mag.above, magnet_above_strength=mag.above_strength,
            magnet_below=mag.below, magnet_below_strength=mag.below_strength, magnet_expiry=mag.expiry,
            scale=typical / GEX_REFERENCE if typical > 0 else 1.0, session_date=s.date,
        )
        row = signal_row(x)
        if row is None:
            return []
        row.update({"timestamp": format_ts(s.close), "created_at": format_ts(dt.datetime.now(s.close.tzinfo)),
                    "data_source": data_source, "chain_source": chain_source})
        return [row]
