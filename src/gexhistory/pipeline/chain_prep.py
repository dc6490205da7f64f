"""What an imported chain file's rows imply, and the OptionChain records the engine takes from them.

A parser (sources/chains/) returns the file's contracts as the file gives them (ChainRows); here:
- spots: the file's quoted underlying, else the one put-call parity implies from end-of-day mids;
- IVs: the file's own when positive ('f'), else from the option's mid price by Black-Scholes at that
  spot ('p'), else interpolated across strikes of the expiry ('i'); contracts with no IV at all, and
  contracts with zero OI, are left out and counted in the notes (for formats whose IVs are derived);
- one ImportedChain per (underlying, as-of date): duplicates are malformed rows, except across roots
  of one expiration (SPX and SPXW), which merge; each expiry's close from the calendar.
`read_chain_file` runs the whole of it for one file, an OptionsDX file's OI file included.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gexhistory.calendar import ET, session_on, sessions_between
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.greeks import SECONDS_PER_YEAR
from gexhistory.engine.implied import fill_iv_by_strike, implied_vol, parity_spot
from gexhistory.engine.params import Conventions
from gexhistory.errors import BadInput
from gexhistory.pipeline.symbols import LISTED, LISTED_RULE
from gexhistory.sources.chains import detect, generic, quotedata
from gexhistory.sources.chains.bounds import check_bounds
from gexhistory.sources.chains.common import ChainRows, chain_keys, read_table
from gexhistory.sources.chains.roots import am_settled

PARITY_KIND = "implied: put-call parity on end-of-day mids"


@dataclass
class ImportedChain:
    """One parsed chain plus what the file said about it (and how it was interpreted)."""

    chain: OptionChain
    fmt: str
    file: str
    label: str
    iv_source: np.ndarray  # per contract: 'f' from the file, 'p' from the option's price, 'i' interpolated
    file_spot: float | None = None
    file_spot_kind: str | None = None
    notes: list[str] = field(default_factory=list)
    moment: dt.datetime | None = None  # when the file's quotes were taken, where it says


def read_chain_file(path: str, *, oi_file: str | None = None, volume_as_oi: bool = False,
                    underlying: str | None = None) -> list[ImportedChain]:
    """The chains of one file (BadInput naming file:line for anything malformed)."""
    if quotedata.sniff(path):  # its header is not on the first line: it has a reader of its own
        return _chains_of(path, quotedata.parse(path, underlying=underlying))
    table = read_table(path)
    if len(table) == 0:
        raise BadInput(f"{path}: no contracts (a header and no rows)")
    mod = detect(table)
    if mod.FORMAT == "optionsdx":
        oi_chains = [c.chain for c in _read_oi_file(oi_file, underlying)] if oi_file else None
        rows = mod.parse(table, oi_file=oi_file, oi_chains=oi_chains, volume_as_oi=volume_as_oi,
                         underlying=underlying)
    else:
        rows = mod.parse(table)  # the other formats carry their own OI: --oi-file does not apply
    return _chains_of(path, rows)


def _chains_of(path: str, rows: ChainRows) -> list[ImportedChain]:
    chains = prepare(rows)
    if not chains:
        raise BadInput(f"{path}: no contract with open interest and an IV")
    for c in chains:  # a session of net GEX 0 would be stored as if the market held no options
        if not (c.chain.open_interest > 0).any():
            raise BadInput(f"{path}: {c.chain.underlying} {c.chain.as_of}: every contract's open interest is zero: "
                           f"no GEX to compute")
    return chains


def check_underlyings(rows: ChainRows) -> None:
    """A file's underlyings follow the symbol rules of backfill (pipeline/symbols.py): BadInput naming
    the first line of a name that cannot be a listed ticker."""
    names, first = np.unique(rows.underlying.astype(str), return_index=True)
    for name, i in zip(names.tolist(), first.tolist()):
        if not LISTED.match(name):
            raise BadInput(f"{rows.path}:{int(rows.lines[i])}: underlying {name!r} does not look like a listed "
                           f"ticker ({LISTED_RULE})")


def _read_oi_file(oi_file: str, underlying: str | None) -> list[ImportedChain]:
    """The chains of an OptionsDX OI file: any other format, or a generic file of OI without IVs."""
    t = read_table(oi_file)
    if len(t) == 0:
        raise BadInput(f"{oi_file}: no contracts (a header and no rows)")
    if generic.OI_ONLY <= t.columns and not generic.matches(t.columns):
        if "underlying" not in t.columns and not underlying:
            raise BadInput(f"{oi_file}: no underlying column: give --underlying")
        return prepare(generic.parse(t, require_iv=False, underlying=underlying))
    mod = detect(t)
    if mod.FORMAT == "optionsdx":
        raise BadInput(f"{oi_file}: an OptionsDX file has no OI to merge")
    return prepare(mod.parse(t))


def prepare(rows: ChainRows) -> list[ImportedChain]:
    """A parsed file's contracts -> its chains: spots, IVs, the contracts that count, one record per
    (underlying, as-of date), with the notes saying what was derived and what left out."""
    check_bounds(rows)
    check_underlyings(rows)
    am = am_settled(rows.group) if rows.group is not None else None
    spots = dict(rows.quoted_spots or {})
    if rows.mid is not None and len(spots) < np.unique(chain_keys(rows.underlying, rows.as_of)).size:
        for k, s in parity_spots(rows.underlying, rows.as_of, rows.expiry, rows.strike, rows.is_call,
                                 rows.mid).items():
            spots.setdefault(k, (s, PARITY_KIND))
    notes = list(rows.notes)
    oi = rows.oi
    if rows.derive_iv:
        iv, src = derive_ivs(underlying=rows.underlying, as_of=rows.as_of, expiry=rows.expiry, strike=rows.strike,
                             is_call=rows.is_call, file_iv=rows.file_iv, mid=rows.mid,
                             spot_by_chain={k: v[0] for k, v in spots.items()}, am=am,
                             interpolate=rows.interpolate_iv)
        keep = (oi > 0) & np.isfinite(iv)
        if rows.zero_oi_note and (oi == 0).any():
            notes.append(f"{int((oi == 0).sum())} contracts with zero OI left out (no gamma)")
        if ((oi > 0) & ~np.isfinite(iv)).any():
            notes.append(f"{int(((oi > 0) & ~np.isfinite(iv)).sum())} {rows.no_iv_note}")
        for code, what in (("p", "from end-of-day mid prices"), ("i", "interpolated across strikes")):
            n = int((keep & (src == code)).sum())
            if n:
                notes.append(f"{n} IVs {what}")
    else:  # the file's IVs as given; a blank or zero one is none: left out and counted, the file kept
        iv, src = rows.file_iv, np.full(len(rows), "f", dtype=object)
        keep = np.ones(len(rows), dtype=bool) if rows.keep_without_iv else np.isfinite(iv) & (iv > 0)
        if not keep.all():
            notes.append(f"{int((~keep).sum())} contracts with a blank or zero IV left out")
    pick = (lambda a: a[keep] if a is not None else None)  # noqa: E731
    chains = build_chains(path=rows.path, fmt=rows.fmt, label=rows.label, underlying=rows.underlying[keep],
                          as_of=rows.as_of[keep], expiry=rows.expiry[keep], strike=rows.strike[keep],
                          is_call=rows.is_call[keep], oi=oi[keep], iv=iv[keep], iv_source=src[keep],
                          lines=rows.lines[keep], gamma=pick(rows.gamma), spot=pick(rows.spot),
                          spot_kind=rows.spot_kind, group=pick(rows.group), notes=notes, am=pick(am))
    for c in chains:
        c.moment = rows.moment
        s = spots.get(f"{c.chain.underlying}|{c.chain.as_of.isoformat()}")
        if s is not None:
            c.file_spot, c.file_spot_kind = s
    return chains


def build_chains(*, path: str, fmt: str, label: str, underlying: np.ndarray, as_of: np.ndarray,
                 expiry: np.ndarray, strike: np.ndarray, is_call: np.ndarray, oi: np.ndarray, iv: np.ndarray,
                 iv_source: np.ndarray, lines: np.ndarray, gamma: np.ndarray | None = None,
                 spot: np.ndarray | None = None, spot_kind: str | None = None, group: np.ndarray | None = None,
                 notes: list[str] | None = None, am: np.ndarray | None = None) -> list[ImportedChain]:
    """Rows -> one ImportedChain per (underlying, as_of), sorted. The same contract twice is a
    malformed row, except across `group` (roots of one expiration settling alike, e.g. SPXW and SPXQ),
    where OI adds up and IV and gamma are OI-weighted. `am`: contracts that expire at the open of their
    expiration session (AM-settled roots): never merged with a PM root's (an SPX monthly and the SPXW
    contract of its third Friday are two contracts), and on that session gone before any snapshot, so
    left out."""
    n = strike.size
    notes = list(notes or [])
    if am is not None and (am & (expiry == as_of)).any():
        gone = ~(am & (expiry == as_of))
        notes.append(f"{int((~gone).sum())} AM-settled contracts expired at the session's open left out")
        underlying, as_of, expiry, strike, is_call, oi, iv, iv_source, lines, am = (
            a[gone] for a in (underlying, as_of, expiry, strike, is_call, oi, iv, iv_source, lines, am))
        gamma, spot, group = (a[gone] if a is not None else None for a in (gamma, spot, group))
        n = strike.size
    df = pd.DataFrame({
        "u": underlying.astype(str), "d": as_of, "e": expiry, "k": strike, "c": is_call, "oi": oi, "iv": iv,
        "src": iv_source, "line": lines, "g": gamma if gamma is not None else np.full(n, np.nan),
        "grp": group if group is not None else np.zeros(n, dtype=object),
        "ec": expiry_close_ts(expiry, am) if n else np.empty(0),
    })
    key = ["u", "d", "e", "ec", "k", "c"]
    dup = df.duplicated(key + ["grp"], keep="first").to_numpy()
    if dup.any():
        firsts = df.groupby(key + ["grp"], sort=False)["line"].transform("min").to_numpy()
        i = int(np.flatnonzero(dup)[0])
        raise BadInput(f"{path}:{int(df.loc[i, 'line'])}: duplicate contract (same as line {int(firsts[i])})")
    merged_note = None
    if df.duplicated(key, keep=False).any():
        w = np.where(df["oi"] > 0, df["oi"], 1e-12)
        df = df.assign(w=w, wiv=w * df["iv"], wg=w * df["g"])
        before = len(df)
        df = df.groupby(key, sort=False, as_index=False).agg(
            oi=("oi", "sum"), w=("w", "sum"), wiv=("wiv", "sum"), wg=("wg", "sum"), src=("src", lambda x: "i" if (x == "i").any() else max(x)),
            line=("line", "min"))
        df["iv"] = df["wiv"] / df["w"]
        df["g"] = df["wg"] / df["w"]
        merged_note = f"{before - len(df)} contracts listed under two roots merged (OI added, IV OI-weighted)"
    out: list[ImportedChain] = []
    spot_by = None
    if spot is not None:
        sdf = pd.DataFrame({"u": underlying.astype(str), "d": as_of, "s": spot})
        sdf = sdf[np.isfinite(sdf["s"]) & (sdf["s"] > 0)]
        spot_by = sdf.groupby(["u", "d"])["s"].median().to_dict()
    for (u, d), g in df.sort_values(key).groupby(["u", "d"], sort=True):
        e = g["e"].to_numpy().astype("datetime64[D]")
        gam = g["g"].to_numpy(dtype=float)
        chain = OptionChain(
            underlying=str(u), as_of=pd.Timestamp(d).date(), expiry=e, expiry_close=g["ec"].to_numpy(dtype=float),
            strike=g["k"].to_numpy(dtype=float), is_call=g["c"].to_numpy(dtype=bool),
            open_interest=g["oi"].to_numpy(dtype=float), iv=g["iv"].to_numpy(dtype=float), source=label,
            gamma=gam if np.isfinite(gam).any() else None,
        )
        s = spot_by.get((u, d)) if spot_by else None
        item = ImportedChain(chain, fmt, path, label, g["src"].to_numpy(dtype=object),
                             float(s) if s is not None else None, spot_kind if s is not None else None,
                             list(notes or []))
        if merged_note:
            item.notes.append(merged_note)
        out.append(item)
    return out


def parity_spots(underlying, as_of, expiry, strike, is_call, mid) -> dict[str, float]:
    """Per chain ('UND|date'): the underlying implied by put-call parity from end-of-day mids, on the
    nearest expiry at least two days out that has call/put pairs."""
    conv = Conventions()
    t = (expiry_close_ts(expiry) - session_close_ts(as_of)) / SECONDS_PER_YEAR
    df = pd.DataFrame({"key": chain_keys(underlying, as_of), "e": expiry, "k": strike, "c": is_call, "m": mid, "t": t})
    df = df[np.isfinite(df["m"]) & (df["m"] > 0) & (df["t"] >= 2 / 365)]
    wide = df.pivot_table(index=["key", "t", "k"], columns="c", values="m", aggfunc="mean")
    out: dict[str, float] = {}
    if True not in wide.columns or False not in wide.columns:
        return out
    wide = wide.dropna().reset_index()
    for key, g in wide.groupby("key"):
        first = g[g["t"] == g["t"].min()]
        s = parity_spot(first[True], first[False], first["k"], first["t"], conv.r, conv.q)
        if s is not None and s > 0:
            out[str(key)] = s
    return out


def derive_ivs(*, underlying, as_of, expiry, strike, is_call, file_iv, mid=None, spot_by_chain=None, am=None,
               interpolate=True):
    """IV per contract and where it came from: the file's own when positive ('f'); else from the
    option's end-of-day mid price by Black-Scholes ('p') at its expiry's forward implied by put-call
    parity (options on futures-priced underlyings such as VIX are priced off that forward, not the
    cash index), at the chain's spot where the expiry has no call/put pair; else, with `interpolate`,
    interpolated across strikes of the same expiry ('i'); NaN when none of these exists (the caller
    drops and says so)."""
    conv = Conventions()
    iv = np.where(np.isfinite(file_iv) & (file_iv > 0), file_iv, np.nan)
    src = np.where(np.isfinite(iv), "f", "").astype(object)
    if mid is not None and spot_by_chain:
        need = ~np.isfinite(iv)
        if need.any():
            keys = chain_keys(underlying[need], as_of[need])
            s = np.array([spot_by_chain.get(k, np.nan) for k in keys], dtype=float)
            ec = expiry_close_ts(expiry, am)
            fwd = forward_spots(underlying, as_of, expiry, strike, is_call, mid, ec)[need]
            s = np.where(np.isfinite(fwd), fwd, s)
            t = (ec[need] - session_close_ts(as_of[need])) / SECONDS_PER_YEAR
            got = implied_vol(mid[need], s, strike[need], t, conv.r, conv.q, is_call[need])
            iv[need] = got
            src[np.flatnonzero(need)[np.isfinite(got)]] = "p"
    before = np.isfinite(iv)
    if not interpolate:
        return iv, src
    iv = fill_iv_by_strike(np.char.add(chain_keys(underlying, as_of), expiry.astype(str)), strike, iv)
    src[np.isfinite(iv) & ~before] = "i"
    return iv, src


def forward_spots(underlying, as_of, expiry, strike, is_call, mid, expiry_ts) -> np.ndarray:
    """Per contract: the spot that puts its expiry's forward into Black-Scholes, S = F e^{-(r-q)T}, F
    from put-call parity (F = K + e^{rT} (C - P)) as the median over the five call/put pairs nearest
    the money; NaN where the expiry has no pair of positive mids."""
    conv = Conventions()
    t = (expiry_ts - session_close_ts(as_of)) / SECONDS_PER_YEAR
    key = np.char.add(chain_keys(underlying, as_of), np.char.add("|", expiry_ts.astype(np.int64).astype(str)))
    df = pd.DataFrame({"g": key, "k": strike, "c": is_call, "m": mid, "t": t})
    ok = df[np.isfinite(df["m"]) & (df["m"] > 0) & (df["t"] > 0)]
    wide = ok.pivot_table(index=["g", "k"], columns="c", values="m", aggfunc="mean")
    if True not in wide.columns or False not in wide.columns:
        return np.full(key.size, np.nan)
    wide = wide.dropna().reset_index()
    wide["t"] = wide["g"].map(ok.groupby("g")["t"].first())
    wide["gap"] = (wide[True] - wide[False]).abs()
    wide = wide.sort_values(["g", "gap"], kind="stable")
    near = wide[wide.groupby("g").cumcount() < 5]
    fwd = (near["k"] + np.exp(conv.r * near["t"]) * (near[True] - near[False])).groupby(near["g"]).median()
    t_g = near.groupby("g")["t"].first()
    spot_eq = fwd * np.exp(-(conv.r - conv.q) * t_g)
    return pd.Series(key).map(spot_eq[spot_eq > 0]).to_numpy(dtype=float)


def expiry_close_ts(expiry: np.ndarray, am: np.ndarray | None = None) -> np.ndarray:
    """POSIX seconds of each expiration's close: the last session on or before the date (a Saturday
    expiration of old monthlies trades last on the Friday); 16:00 ET beyond the known calendar. Where
    `am` (AM-settled roots), that session's open instead (09:30 ET beyond the calendar)."""
    uniq, inv = np.unique(expiry, return_inverse=True)
    closes = np.empty(uniq.size)
    opens = np.empty(uniq.size)
    calendar_end = sessions_between(dt.date.today(), dt.date.today() + dt.timedelta(days=800))
    last_known = calendar_end[-1].date if calendar_end else dt.date.today()
    for j, d in enumerate(uniq.astype(dt.date)):
        found = sessions_between(d - dt.timedelta(days=7), d) if d <= last_known else []
        if found:  # the session on the date, or the one before a weekend/holiday expiration
            closes[j], opens[j] = found[-1].close.timestamp(), found[-1].open.timestamp()
        else:
            closes[j] = dt.datetime.combine(d, dt.time(16, 0), tzinfo=ET).timestamp()
            opens[j] = dt.datetime.combine(d, dt.time(9, 30), tzinfo=ET).timestamp()
    if am is None:
        return closes[inv]
    return np.where(am, opens[inv], closes[inv])


def session_close_ts(as_of: np.ndarray) -> np.ndarray:
    """POSIX seconds of each as-of session's close (the moment an EOD file's quotes describe)."""
    uniq, inv = np.unique(as_of, return_inverse=True)
    return np.array([session_on(d).close.timestamp() for d in uniq.astype(dt.date)])[inv]
