"""A user's own daily bars from a CSV file (`--source csv --bars FILE`).

Header required, names case-insensitive, any order: `date` (YYYY-MM-DD) and `close` always;
`open,high,low` together or not at all (a file without them is close-only and flagged); `volume`
optional; `symbol` (or `ticker`) optional, and needed when one file holds several symbols. Every
row is checked (numbers, prices from 1e-4 to below 1e7, volumes from 0 to below 1e12, low <= open/close <= high, NYSE session dates, no
duplicates): a bad row is bad input (exit 2) naming its line, and nothing is written. Rows are
labelled `csv:<file name>`. The file is daily only: sessions are priced at the open (09:30) and
the close, never at invented intraday times.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

from gexhistory.calendar import CALENDAR_START, Session, sessions_between
from gexhistory.config import COUNT_MAX, PRICE_MAX, PRICE_MIN, plausible_count, plausible_price
from gexhistory.errors import BadFile
from gexhistory.sources import labels
from gexhistory.sources.base import MINUTES_PER_SESSION, DailyBars, MinuteBars, PriceSource

OHLC = ("open", "high", "low")
ALIASES = {"ticker": "symbol", "day": "date", "vol": "volume"}


class CsvBars(PriceSource):
    """PriceSource over one CSV file, read and validated whole when constructed."""

    cache_bars = False  # the file is the truth: reread every run, so an edited file is never shadowed

    def __init__(self, path: str | Path, symbols: list[str] | None = None):
        self.path = Path(path)
        self.name = labels.csv_label(self.path)
        super().__init__()
        self._rows: dict[str | None, dict[dt.date, tuple]] = {}
        self._lines: list[tuple[dt.date, int]] = []
        self._read()
        self._check_sessions()
        if None in self._rows and symbols and len(symbols) > 1:
            raise BadFile(f"bars file {self.path.name} has no symbol column, so it can price one symbol per run, "
                           f"not {len(symbols)}")
        if symbols and None not in self._rows:
            absent = [s for s in symbols if s not in self._rows]
            if absent:
                raise BadFile(f"bars file {self.path.name} has no rows for {absent[0]}")

    def _read(self) -> None:
        if not self.path.is_file():
            raise BadFile(f"bars file {self.path} does not exist")
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is None:
                    raise BadFile(f"bars file {self.path.name} is empty")
                cols = [ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
                self._check_header(cols)
                pos = {c: i for i, c in enumerate(cols)}
                for line_no, row in enumerate(reader, start=2):
                    if not row or all(not x.strip() for x in row):
                        continue
                    self._add(line_no, row, pos)
        except UnicodeDecodeError:
            raise BadFile(f"bars file {self.path.name} is not UTF-8 text") from None
        except csv.Error as exc:
            raise BadFile(f"bars file {self.path.name}: {exc}") from None
        if not self._rows:
            raise BadFile(f"bars file {self.path.name} has a header but no rows")

    def _check_sessions(self) -> None:
        last = max(d for d, _ in self._lines)
        if last < CALENDAR_START:
            return
        open_days = {s.date for s in sessions_between(CALENDAR_START, last)}
        for day, line_no in self._lines:
            if day >= CALENDAR_START and day not in open_days:
                raise BadFile(f"bars file {self.path.name} line {line_no}: {day} is not an NYSE session "
                               "(weekend, holiday or closure)")

    def _check_header(self, cols: list[str]) -> None:
        missing = [c for c in ("date", "close") if c not in cols]
        if missing:
            raise BadFile(f"bars file {self.path.name}: the header must name date and close columns "
                           f"(date,open,high,low,close,volume), missing {', '.join(missing)}")
        dupes = {c for c in cols if c and cols.count(c) > 1}
        if dupes:
            raise BadFile(f"bars file {self.path.name}: column {sorted(dupes)[0]!r} appears twice")
        have = [c for c in OHLC if c in cols]
        if have and len(have) != 3:
            raise BadFile(f"bars file {self.path.name}: give open, high and low together, or none of them "
                           "(a close-only file)")
        self.close_only = not have
        self.has_volume = "volume" in cols

    def _add(self, line_no: int, row: list[str], pos: dict[str, int]) -> None:
        where = f"bars file {self.path.name} line {line_no}"

        def cell(name: str) -> str:
            i = pos[name]
            if i >= len(row):
                raise BadFile(f"{where}: no {name} value")
            return row[i].strip()

        raw_date = cell("date")
        try:
            day = dt.date.fromisoformat(raw_date)
        except ValueError:
            raise BadFile(f"{where}: date {raw_date!r} is not YYYY-MM-DD") from None

        def number(name: str) -> float:
            raw = cell(name)
            try:
                value = float(raw)
            except ValueError:
                raise BadFile(f"{where}: {name} {raw!r} is not a number") from None
            if name == "volume" and not plausible_count(value):
                raise BadFile(f"{where}: volume {raw!r} must be a number from 0 to below {COUNT_MAX:g}")
            if name != "volume" and not plausible_price(value):
                raise BadFile(f"{where}: {name} {raw!r} must be a price from {PRICE_MIN:g} to below {PRICE_MAX:g}")
            return value

        close = number("close")
        o = h = lo = float("nan")
        if not self.close_only:
            o, h, lo = number("open"), number("high"), number("low")
            if not (lo <= min(o, close) and max(o, close) <= h):
                raise BadFile(f"{where}: incoherent bar (need low <= open, close <= high)")
        vol = number("volume") if self.has_volume else float("nan")
        symbol = None
        if "symbol" in pos:
            symbol = cell("symbol").upper()
            if not symbol:
                raise BadFile(f"{where}: empty symbol")
        self._lines.append((day, line_no))
        per_symbol = self._rows.setdefault(symbol, {})
        if day in per_symbol:
            raise BadFile(f"{where}: a second row for {day}" + (f" ({symbol})" if symbol else ""))
        per_symbol[day] = (o, h, lo, close, vol)

    def _series(self, symbol: str) -> dict[dt.date, tuple]:
        if None in self._rows:
            return self._rows[None]
        if symbol not in self._rows:
            raise BadFile(f"bars file {self.path.name} has no rows for {symbol}")
        return self._rows[symbol]

    def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> DailyBars:
        series = self._series(symbol)
        days = sorted(d for d in series if start <= d <= end)
        if not days:
            raise BadFile(f"bars file {self.path.name} has no rows for {symbol} from {start} to {end}")
        have = set(days)
        missing = [s.date for s in sessions_between(max(start, days[0]), end) if s.date not in have]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise BadFile(f"bars file {self.path.name} has no row for {symbol} on {missing[0]}{more}: "
                           f"the rows must cover every session from the first one through {end}")
        a = np.array([series[d] for d in days], dtype=float)
        if self.close_only:
            self.notes.append(f"{self.name}: close-only bars file: only the close snapshot of each session "
                              "is computed (open and intraday prices are unknown)")
        return DailyBars(symbol, days, a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], self.name,
                         close_only=self.close_only)

    def check_covers(self, symbol: str, bars_from: dt.date, start: dt.date, end: dt.date) -> None:
        noted = len(self.notes)
        bars = self.daily_bars(symbol, bars_from, end)  # no row, or a hole after the first one: BadFile
        del self.notes[noted:]  # what daily_bars notes is said when the run reads the bars
        window = sessions_between(start, end)
        if window and bars.dates[0] > window[0].date:
            raise BadFile(f"bars file {self.path.name} has no row for {symbol} on {window[0].date}: its first "
                          f"row for {symbol} in the window is {bars.dates[0]}")

    def minute_bars(self, symbol: str, sessions: list[Session]) -> MinuteBars:
        # Daily only: no minute is known. The pipeline prices the open and the close from the daily bars.
        empty = np.full((len(sessions), MINUTES_PER_SESSION), np.nan)
        return MinuteBars(symbol, list(sessions), empty, empty.copy(), empty.copy(), self.name)
