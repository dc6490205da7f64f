"""Bars through the store first, then the source: a rerun never fetches bars it already holds.

`BarCache` wraps a real (non-synthetic) PriceSource. Sources that fetch over the network
(`cache_bars = True`) are answered from price_bars when the stored bars cover the request; bars a
source did return wait in memory and are written by `flush` inside the transaction of the first batch
of sessions, so a run that fails before writing any session stores nothing. Sessions without minute
bars (a plan without minutes, a daily-only CSV) are priced from their daily bar: the open at 09:30 and
the close at the close; snapshots between them have no known price and are not computed.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from gexhistory.calendar import Session, sessions_between
from gexhistory.sources.base import MINUTES_PER_SESSION, VIX, DailyBars, MinuteBars, PriceSource, minutes_from_daily
from gexhistory.store import bars as store_bars
from gexhistory.words import plural


class BarCache(PriceSource):
    """`source` answered through price_bars; `flush(conn)` writes what it fetched."""

    def __init__(self, source: PriceSource, engine):
        super().__init__()
        self.source = source
        self.engine = engine
        self.name = source.name
        self.is_synthetic = source.is_synthetic
        self.vix_label = source.vix_label
        self._read = source.cache_bars
        self._pending: dict[tuple, dict] = {}
        self._daily: dict[str, DailyBars] = {}

    @property
    def notes(self) -> list[str]:
        return list(dict.fromkeys([*self.source.notes, *self._notes]))

    @notes.setter
    def notes(self, value: list[str]) -> None:  # PriceSource.__init__ sets it; this cache keeps its own
        self._notes = list(value)

    # -- daily -------------------------------------------------------------------------------
    def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> DailyBars:
        bars = self._stored_daily(symbol, start, end) if self._read else None
        if bars is None:
            bars = self.source.daily_bars(symbol, start, end)
            self._keep_daily(bars)
        self._daily[symbol] = bars
        return bars

    def vix_bars(self, start: dt.date, end: dt.date) -> DailyBars | None:
        bars = self._stored_daily(VIX, start, end) if self._read else None
        if bars is None:
            bars = self.source.vix_bars(start, end)
            if bars is not None:
                self._keep_daily(bars)
        return bars

    def _stored_daily(self, symbol: str, start: dt.date, end: dt.date) -> DailyBars | None:
        rows = store_bars.read_bars(self.engine, symbol, "1d", self.name, f"{start} 00:00:00", f"{end} 23:59:59")
        by_date = {dt.date.fromisoformat(r[0][:10]): r for r in rows}
        dates = [s.date for s in sessions_between(start, end)]
        if not dates or any(d not in by_date for d in dates):
            return None
        a = np.array([[np.nan if v is None else float(v) for v in by_date[d][1:8]] for d in dates], dtype=float)
        return DailyBars(symbol, dates, a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], self.name,
                         close_only=any(bool(by_date[d][8]) for d in dates), vwap=a[:, 5], trades=a[:, 6])

    def _keep_daily(self, bars: DailyBars) -> None:
        for row in daily_rows(bars):
            self._pending[(row["symbol"], "1d", row["timestamp"])] = row

    # -- minutes -----------------------------------------------------------------------------
    def minute_bars(self, symbol: str, sessions: list[Session]) -> MinuteBars:
        n = len(sessions)
        arrays = {f: np.full((n, MINUTES_PER_SESSION), np.nan) for f in ("open", "high", "low", "close", "volume")}
        held = self._stored_minutes(symbol, sessions, arrays) if self._read and sessions else set()
        missing = [i for i, s in enumerate(sessions) if s.date not in held]
        if missing:
            got = self.source.minute_bars(symbol, [sessions[i] for i in missing])
            for f in arrays:
                col = getattr(got, f, None)
                if col is not None:
                    arrays[f][missing] = col
            self._keep_minutes(symbol, [sessions[i] for i in missing], got)
        self._fill_from_daily(symbol, sessions, arrays)
        return MinuteBars(symbol, list(sessions), arrays["open"], arrays["close"], arrays["volume"], self.name,
                          high=arrays["high"], low=arrays["low"])

    def _stored_minutes(self, symbol: str, sessions: list[Session], arrays: dict) -> set[dt.date]:
        rows = store_bars.read_bars(self.engine, symbol, "1m", self.name,
                                    f"{sessions[0].date} 00:00:00", f"{sessions[-1].date} 23:59:59")
        row_of = {s.date.isoformat(): i for i, s in enumerate(sessions)}
        open_min = [s.open.hour * 60 + s.open.minute for s in sessions]
        held: set[dt.date] = set()
        for ts, o, h, lo, c, v, *_ in rows:
            i = row_of.get(ts[:10])
            if i is None:
                continue
            col = int(ts[11:13]) * 60 + int(ts[14:16]) - open_min[i]
            if 0 <= col < MINUTES_PER_SESSION:
                for f, val in (("open", o), ("high", h), ("low", lo), ("close", c), ("volume", v)):
                    arrays[f][i, col] = np.nan if val is None else val
                held.add(sessions[i].date)
        return held

    def _keep_minutes(self, symbol: str, sessions: list[Session], got: MinuteBars) -> None:
        for i, s in enumerate(sessions):
            cols = np.flatnonzero(~np.isnan(got.close[i]))
            if cols.size == 0:
                continue
            start = np.datetime64(s.open.replace(tzinfo=None), "m")  # ET wall time; no DST change in a session
            stamps = np.datetime_as_string(start + cols.astype("timedelta64[m]"), unit="s")
            for col, stamp in zip(cols.tolist(), stamps.tolist()):
                ts = stamp.replace("T", " ")
                self._pending[(symbol, "1m", ts)] = {
                    "symbol": symbol, "timeframe": "1m", "timestamp": ts,
                    "open": _num(got.open[i, col]), "close": float(got.close[i, col]),
                    "high": None if got.high is None else _num(got.high[i, col]),
                    "low": None if got.low is None else _num(got.low[i, col]),
                    "volume": _num(got.volume[i, col]), "data_source": self.name,
                }

    def _fill_from_daily(self, symbol: str, sessions: list[Session], arrays: dict) -> None:
        empty = [i for i in range(len(sessions)) if np.isnan(arrays["close"][i]).all()]
        if not empty:
            return
        need = [sessions[i] for i in empty]
        daily = self._daily.get(symbol)
        if daily is None or not {s.date for s in need} <= set(daily.dates):
            daily = self.daily_bars(symbol, need[0].date, need[-1].date)
        filled = minutes_from_daily(daily, need)
        arrays["open"][empty] = filled.open
        arrays["close"][empty] = filled.close
        what = "the close" if daily.close_only else "the open (09:30) and the close"
        self._notes.append(
            f"{self.name}: no minute bars for {symbol} on {len(empty)} of {plural(len(sessions), 'session')} "
            f"(first {need[0].date}): those sessions are priced from daily bars, so only {what} snapshots "
            "were computed; intraday snapshots are left out, not invented")

    # -- writing -----------------------------------------------------------------------------
    def flush(self, conn) -> int:
        """Write the bars fetched so far (inside the caller's transaction)."""
        rows = list(self._pending.values())
        self._pending.clear()
        return store_bars.upsert_bars(conn, rows)


def daily_rows(bars: DailyBars, symbol: str | None = None) -> list[dict]:
    """price_bars rows of daily bars, under `symbol` when it is not the bars' own (SPX for I:SPX)."""
    return [{"symbol": symbol or bars.symbol, "timeframe": "1d", "timestamp": f"{d} 00:00:00",
             "open": _num(bars.open[i]), "high": _num(bars.high[i]), "low": _num(bars.low[i]),
             "close": float(bars.close[i]), "volume": _num(bars.volume[i]),
             "vwap": None if bars.vwap is None else _num(bars.vwap[i]),
             "trades": None if bars.trades is None or np.isnan(bars.trades[i]) else int(bars.trades[i]),
             "close_only": bool(bars.close_only), "data_source": bars.source}
            for i, d in enumerate(bars.dates)]


def _num(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x
