"""Cboe delayed-quotes downloads ("quotedata" CSV: spx_quotedata.csv, nvda_quotedata.csv ...).

Layout, as Cboe's delayed-quotes page writes it:

    (an empty line, sometimes)
    SPX (S&P 500 INDEX),Last: 3900.8601,Change: -116.96
    "Date: June 11, 2022, 8:47 PM EDT",Bid: N/A,Ask: N/A,Size: N/A,Volume: 0
    Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,Last Sale,...
    Fri Jun 10 2022,SPXW220610C01000000,0.0,0.0,2883.2,2913.3,0,0.0,1.0,0.0,0,1000.0,SPXW220610P01000000,...

The header has 22 columns, the call's eleven on the left, the strike, the put's on the right (so
"Last Sale", "Bid", "IV" ... appear twice: columns are read by position). The Date line is also
written "Date: January 7, 2024 at 10:52 AM EST", and day first ("Date: 11 June 2022, ...").

Interpretation:
- Underlying: from the option symbols' roots (sources/chains/roots.py: SPX and SPXW are SPX, NDXP is
  NDX, an equity root is its symbol); `--underlying` overrides.
- Session: the last NYSE session whose close is at or before the Date line's moment (a Saturday
  download is Friday's session; a download at 11:00 on a session day is the previous session's).
- Spot: the Last: value. OI and IV: Cboe's (IV a decimal). An IV of 0 is Cboe's "none": the IV of the
  option's mid (bid > 0, ask >= bid) by Black-Scholes at its expiry's parity forward; without a quote
  the contract is left out and counted. Gamma: Cboe's, kept as the vendor's.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import warnings
from datetime import timedelta, timezone

import numpy as np

from gexhistory.calendar import CALENDAR_START, ET, last_completed_session
from gexhistory.errors import BadInput
from gexhistory.sources.chains.common import ChainRows, Table, expiry_check, make_label, vendor_gamma
from gexhistory.sources.chains.reader import head_lines, pandas_source, unreadable_errors
from gexhistory.sources.chains.roots import underlying_of
from gexhistory.words import plural

FORMAT = "cboe_quotedata"
HEADER = ("Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,"
          "Puts,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest").split(",")
SIDE = ["symbol", "last sale", "net", "bid", "ask", "volume", "iv", "delta", "gamma", "open interest"]
# By position, named as messages show them: "call iv '-0.1' must not be negative".
COLUMNS = ["expiration date", *(f"call {c}" for c in SIDE), "strike", *(f"put {c}" for c in SIDE)]
PREAMBLE_LINES = 8  # the header is found within the first lines or the file is not this format
SPOT_MAX = 1e6

# Cboe writes the moment in the zone of the reader's browser, as the browser's locale prints it: US
# readers get an abbreviation with a 12-hour clock, others often a 24-hour clock and an abbreviation or
# an offset ("GMT+2", "UTC+05:30"). Abbreviations that name more than one zone (IST, CST outside the US
# sense) are taken in their US sense or refused.
ZONES = {"EDT": -4, "EST": -5, "ET": None, "CDT": -5, "CST": -6, "MDT": -6, "MST": -7, "PDT": -7, "PST": -8,
         "AKDT": -8, "AKST": -9, "HST": -10, "UTC": 0, "GMT": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1,
         "CEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "HKT": 8, "SGT": 8, "AWST": 8, "JST": 9, "KST": 9,
         "ACST": 9.5, "ACDT": 10.5, "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13}
_CLOCK = (r"(?P<h>\d{1,2}):(?P<m>\d{2})(?:\s*(?P<ampm>[AaPp]\.?[Mm]\.?))?\s+"
          r"(?P<tz>(?:GMT|UTC)\s*[+\-\u2212]\s*\d{1,2}(?::?\d{2})?|[A-Za-z]{2,5})")
_DATE_LINE = [
    re.compile(r"^(?P<mon>[A-Za-z]+)\.?\s+(?P<day>\d{1,2}),\s*(?P<year>\d{4})\s*(?:,|\bat\b)\s*" + _CLOCK + r"$"),
    re.compile(r"^(?P<day>\d{1,2})\s+(?P<mon>[A-Za-z]+)\.?,?\s+(?P<year>\d{4})\s*(?:,|\bat\b)\s*" + _CLOCK + r"$"),
]


def _preamble(path: str) -> list[list[str]] | None:
    head = head_lines(path, PREAMBLE_LINES)  # a .gz, .bz2, .xz or one-member .zip too, as pandas reads them
    if head is None:
        return None
    return [next(csv.reader([line]), []) if line.strip() else [] for line in head]


def _header_index(lines: list[list[str]]) -> int | None:
    for i, fields in enumerate(lines):
        names = [f.strip() for f in fields]
        while names and not names[-1]:  # a file saved again with a comma ending each line
            names.pop()
        if names == HEADER:
            return i
    return None


def sniff(path: str) -> bool:
    """True when the file opens the way a quotedata download does: a Last: line, a Date: line, then
    the 22-column header."""
    lines = _preamble(path)
    if not lines:
        return False
    h = _header_index(lines)
    if h is None:
        return False
    before = [",".join(f) for f in lines[:h]]
    return any("Last:" in b for b in before) and any(b.lstrip().startswith("Date:") for b in before)


def _field(lines: list[list[str]], h: int, prefix: str) -> tuple[int, str] | None:
    """(1-based line, text after `prefix`) of the first preamble field starting with it. A file saved
    again by a spreadsheet may have lost the quotes around "Date: June 11, 2022, 8:47 PM EDT": the
    field then runs on over the next fields, up to the next 'Name:' field."""
    for i, fields in enumerate(lines[:h]):
        for j, f in enumerate(fields):
            if f.strip().startswith(prefix):
                rest = [f.strip()[len(prefix):].strip()]
                for g in fields[j + 1:]:
                    if re.match(r"^\s*[A-Za-z][A-Za-z ]*:", g):
                        break
                    rest.append(g.strip())
                return i + 1, ", ".join(rest)
    return None


def read_moment(text: str) -> dt.datetime | None:
    """'June 11, 2022, 8:47 PM EDT' (also '... 2022 at 8:47 PM', '11 June 2022, ...') -> an aware
    datetime; None when the text is not such a moment."""
    for pattern in _DATE_LINE:
        m = pattern.match(text.strip())
        if not m:
            continue
        zone = _zone(m["tz"])
        if zone is None:
            return None
        try:
            day = dt.datetime.strptime(f"{m['mon'][:3].title()} {m['day']} {m['year']}", "%b %d %Y")
        except ValueError:
            return None
        hour, minute = int(m["h"]), int(m["m"])
        if minute >= 60:
            return None
        if m["ampm"]:
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if m["ampm"][0].upper() == "P" else 0)
        elif hour > 23:
            return None
        return day.replace(hour=hour, minute=minute, tzinfo=zone)
    return None


def _zone(text: str) -> dt.tzinfo | None:
    """'EDT' -> UTC-4, 'ET' -> New York's zone, 'GMT+2' / 'UTC+05:30' -> that offset; None if unknown."""
    m = re.fullmatch(r"(?:GMT|UTC)\s*([+\-\u2212])\s*(\d{1,2})(?::?(\d{2}))?", text.strip())
    if m:
        hours, minutes = int(m[2]), int(m[3] or 0)
        if hours > 14 or minutes >= 60:
            return None
        sign = 1 if m[1] == "+" else -1
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    tz = text.upper()
    if tz not in ZONES:
        return None
    return ET if ZONES[tz] is None else timezone(timedelta(hours=ZONES[tz]))


def session_for(moment: dt.datetime) -> dt.date:
    """The last NYSE session whose close is at or before `moment`."""
    return last_completed_session(moment).date


def _table(path: str, h: int) -> Table:
    import pandas as pd  # lazy: its import is a sixth of a second of start-up

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # One spare column: a row with a field too many fills it (and is reported with its line).
            with pandas_source(path) as source:
                df = pd.read_csv(source, header=None, skiprows=h + 1, names=[*COLUMNS, "extra"], dtype=str,
                                 keep_default_na=False, skip_blank_lines=False, index_col=False,
                                 skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserWarning, pd.errors.ParserError) as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{m.group(1)}" if m else path  # pandas counts the skipped lines too
        raise BadInput(f"{where}: wrong number of fields for the 22-column quotedata header") from None
    except (pd.errors.EmptyDataError, *unreadable_errors()) as exc:
        raise BadInput(f"{path}: unreadable quotedata file ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    t = Table(path, df.fillna(""))
    t.lines = t.lines + h  # Table numbers rows from a header on line 1; ours is on line h + 1
    t._report(t.text("extra") != "", "row", t.text("extra"), "has more than the header's 22 fields")
    t.check()
    return t


def _expirations(t: Table) -> np.ndarray:
    import pandas as pd  # lazy: its import is a sixth of a second of start-up

    raw = t.text("expiration date")
    got = pd.to_datetime(pd.Series(raw), format="%a %b %d %Y", errors="coerce")
    t._report(got.isna().to_numpy(), "Expiration Date", raw, "is not a date like 'Fri Jun 10 2022'")
    return got.to_numpy().astype("datetime64[D]")


def _roots(t: Table, col: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(root, is the symbol blank) per row; a symbol that is not root + yymmdd + C/P + strike x 1000 (8
    digits) is malformed. Sliced, not matched with a regular expression: several times faster."""
    import pandas as pd  # lazy: its import is a sixth of a second of start-up

    raw = pd.Series(t.text(col))
    root, tail = raw.str[:-15], raw.str[-15:]
    ok = ((raw.str.len() > 15) & root.str.isalnum() & root.str[:1].str.isalpha() & (root.str.len() <= 7)
          & tail.str[:6].str.isdigit() & tail.str[6].isin(["C", "P"]) & tail.str[7:].str.isdigit())
    blank = (raw == "").to_numpy()
    t._report(~ok.to_numpy(dtype=bool) & ~blank, label, raw.to_numpy(), "is not an option symbol like "
              "SPXW220610C04000000")
    return np.where(ok, root, "").astype(object), blank


def _mid(t: Table, side: str) -> np.ndarray:
    bid = t.number(f"{side} bid", required=False, nonneg=True)
    ask = t.number(f"{side} ask", required=False, nonneg=True)
    return np.where((bid > 0) & (ask >= bid), (bid + ask) / 2, np.nan)


def parse(path: str, *, underlying: str | None = None) -> ChainRows:
    lines = _preamble(path) or []
    h = _header_index(lines)
    if h is None:
        raise BadInput(f"{path}: not a Cboe quotedata file (no 22-column header in its first lines)")
    last = _field(lines, h, "Last:")
    if last is None:
        raise BadInput(f"{path}: no 'Last:' field before the header: the underlying's price is unknown")
    try:
        spot = float(re.sub(r"[,\s]", "", last[1]))  # "3,900.86", or "3, 900.86" from a field split at its comma
    except ValueError:
        spot = float("nan")
    if not (np.isfinite(spot) and 0 < spot <= SPOT_MAX):
        raise BadInput(f"{path}:{last[0]}: Last: {last[1]!r} is not an underlying price (0 to {SPOT_MAX:,.0f})")
    date = _field(lines, h, "Date:")
    moment = read_moment(date[1]) if date else None
    if moment is None:
        where = f"{path}:{date[0]}" if date else path
        raise BadInput(f"{where}: the Date line {date[1] if date else ''!r} is not like 'June 11, 2022, 8:47 PM EDT'")
    if moment.date() <= CALENDAR_START:
        raise BadInput(f"{path}:{date[0]}: {date[1]!r} is before the NYSE calendar's start {CALENDAR_START}")
    if moment > dt.datetime.now(dt.timezone.utc):
        raise BadInput(f"{path}:{date[0]}: {date[1]!r} is in the future")
    day = session_for(moment)

    t = _table(path, h)
    if len(t) == 0:
        raise BadInput(f"{path}: no contracts (a header and no rows)")
    expiry = _expirations(t)
    strike = t.number("strike", positive=True)
    c_root, c_blank = _roots(t, "call symbol", "Calls")
    p_root, p_blank = _roots(t, "put symbol", "Puts")
    oi = {s: t.number(f"{s} open interest", nonneg=True) for s in ("call", "put")}
    iv = {s: t.number(f"{s} iv", required=False, nonneg=True) for s in ("call", "put")}
    mid = {s: _mid(t, s) for s in ("call", "put")}
    notes: list[str] = []
    gamma = np.concatenate([vendor_gamma(t, f"{s} gamma", notes) for s in ("call", "put")])
    t.check()
    as_of = np.full(len(t), np.datetime64(day, "D"))
    expiry_check(t, as_of, expiry, "Expiration Date")
    t.check()

    # Each row is a call and a put; a side whose symbol is blank is not listed.
    two = lambda a: np.concatenate([a, a])  # noqa: E731
    n = len(t)
    listed = ~np.concatenate([c_blank, p_blank])
    roots = np.concatenate([c_root, p_root])
    if underlying:
        und = underlying.upper()
    else:
        found = {r: underlying_of(r) for r in np.unique(roots[listed]).tolist()}
        names = sorted({u for u in found.values() if u})
        if len(names) != 1:
            what = ", ".join(f"{r} -> {u or '?'}" for r, u in sorted(found.items()))
            raise BadInput(f"{path}: cannot tell one underlying from the option roots ({what}): give --underlying")
        und = names[0]
    is_call = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    # A download after the close still lists the session's own expiration, quoted as expired (IV 0, no
    # bid/ask): nothing to take an IV from, and gone at the close. Said apart from the other IV-less rows.
    no_iv = ~(np.concatenate([iv["call"], iv["put"]]) > 0) & ~np.isfinite(np.concatenate([mid["call"], mid["put"]]))
    expired = listed & no_iv & (two(expiry) == two(as_of))
    if expired.any():
        notes.append(f"{plural(int(expired.sum()), 'contract')} of the session's own expiration quoted as expired "
                     "left out")
    keep = listed & ~expired
    pick = lambda a: a[keep]  # noqa: E731
    label = make_label(FORMAT, path)
    return ChainRows(path, FORMAT, label, np.full(int(keep.sum()), und, dtype=object), pick(two(as_of)),
                     pick(two(expiry)), pick(two(strike)), pick(is_call), pick(np.concatenate([oi["call"], oi["put"]])),
                     pick(two(t.lines)), pick(np.concatenate([iv["call"], iv["put"]])), gamma=pick(gamma),
                     mid=pick(np.concatenate([mid["call"], mid["put"]])),
                     quoted_spots={f"{und}|{day.isoformat()}": (spot, "Last:")}, group=pick(roots), notes=notes,
                     no_iv_note="with OI, IV 0 or blank and no bid/ask left out",
                     interpolate_iv=False, moment=moment)
