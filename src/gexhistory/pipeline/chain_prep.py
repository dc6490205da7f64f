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
from functools import lru_cache

import numpy as np

from gexhistory.calendar import ET, session_on, sessions_between
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.greeks import SECONDS_PER_YEAR
from gexhistory.engine.implied import fill_iv_by_strike, implied_vol, parity_spot
from gexhistory.engine.params import Conventions
from gexhistory.errors import BadInput
from gexhistory.pipeline import parallel
from gexhistory.config import LISTED, LISTED_RULE
from gexhistory.runtime import engine_threads
from gexhistory.sources.chains import columns_read, detect, generic, quotedata
from gexhistory.sources.chains.bounds import check_bounds
from gexhistory.sources.chains.common import ChainRows, chain_index, unique_days
from gexhistory.sources.chains.reader import read_table
from gexhistory.sources.chains.roots import am_settled
from gexhistory.words import plural

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
    table = read_table(path, keep=columns_read)
    if len(table) == 0:
        raise BadInput(f"{path}: no contracts (a header and no rows)")
    mod = detect(table)
    if mod.FORMAT == "optionsdx":
        oi_chains = [c.chain for c in _read_oi_file(oi_file, underlying)] if oi_file else None
        rows = mod.parse(table, oi_file=oi_file, oi_chains=oi_chains, volume_as_oi=volume_as_oi,
                         underlying=underlying)
    else:
        rows = mod.parse(table)  # the other formats carry their own OI: --oi-file does not apply
    del table  # its columns are parsed into `rows`: free them before the derivations
    import pyarrow as pa  # lazy: loaded by the reader already

    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed memory for reuse otherwise
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
    the first line of the first name in the file that cannot be a listed ticker."""
    if rows.index is not None:  # coded already: each distinct name checked once
        codes, chains = rows.index
        bad_chain = np.array([not isinstance(u, str) or not LISTED.match(u) for u, _ in chains] + [False])[:-1]
        if codes.size and bad_chain.any():
            i = int(np.flatnonzero(bad_chain[codes])[0])
            raise BadInput(f"{rows.path}:{int(rows.lines[i])}: underlying {chains[codes[i]][0]!r} does not look like "
                           f"a listed ticker ({LISTED_RULE})")
        return
    import pandas as pd  # lazy: its import is a sixth of a second of start-up

    codes, names = pd.factorize(np.asarray(rows.underlying, dtype=object), use_na_sentinel=False)  # by hash
    seen = np.maximum.accumulate(codes) if codes.size else codes
    first = np.flatnonzero(np.r_[True, codes[1:] > seen[:-1]]) if codes.size else codes  # names in file order
    for name, i in zip(names.tolist(), first.tolist()):
        if not isinstance(name, str) or not LISTED.match(name):
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
    if rows.group is None:
        am = None
    elif rows.group_names is not None:  # coded roots: each distinct one decided once
        am = am_settled(rows.group_names)[rows.group] if rows.group.size else np.zeros(0, dtype=bool)
    else:
        am = am_settled(rows.group)
    codes, chains = rows.index if rows.index is not None else chain_index(rows.underlying, rows.as_of)
    spots = dict(rows.quoted_spots or {})
    if rows.mid is not None and len(spots) < len(chains):
        # Only the chains the file quotes no underlying for (index options): the others keep theirs.
        need = np.array([f"{u}|{d}" not in spots for u, d in chains])[codes]
        for k, s in parity_spots(rows.underlying[need], rows.as_of[need], rows.expiry[need], rows.strike[need],
                                 rows.is_call[need], rows.mid[need], index=(codes[need], chains),
                                 am=am[need] if am is not None else None).items():
            spots.setdefault(k, (s, PARITY_KIND))
    notes = list(rows.notes)
    oi = rows.oi
    threads = engine_threads() if len(rows) >= SPLIT_FROM else 1
    if rows.derive_iv:
        iv, src = _in_parts(codes, len(chains), threads, _derive_part, dict(
            as_of=rows.as_of, expiry=rows.expiry, strike=rows.strike,
            is_call=rows.is_call, file_iv=rows.file_iv, mid=rows.mid, am=am, codes=codes),
            spot_by_chain={k: v[0] for k, v in spots.items()}, interpolate=rows.interpolate_iv, chains=chains)
        keep = (oi > 0) & np.isfinite(iv)
        if rows.zero_oi_note and (oi == 0).any():
            notes.append(f"{plural(int((oi == 0).sum()), 'contract')} with zero OI left out (no gamma)")
        if ((oi > 0) & ~np.isfinite(iv)).any():
            notes.append(f"{plural(int(((oi > 0) & ~np.isfinite(iv)).sum()), 'contract')} {rows.no_iv_note}")
        for code, what in (("p", "from end-of-day mid prices"), ("i", "interpolated across strikes")):
            n = int((keep & (src == code)).sum())
            if n:
                notes.append(f"{plural(n, 'IV')} {what}")
    else:  # the file's IVs as given; a blank or zero one is none: left out and counted, the file kept
        iv, src = rows.file_iv, np.full(len(rows), "f")
        keep = np.ones(len(rows), dtype=bool) if rows.keep_without_iv else np.isfinite(iv) & (iv > 0)
        if not keep.all():
            notes.append(f"{plural(int((~keep).sum()), 'contract')} with a blank or zero IV left out")
    # The rows kept are taken part by part as the chains are built, not gathered whole first.
    out = build_chains(path=rows.path, fmt=rows.fmt, label=rows.label, underlying=rows.underlying,
                       as_of=rows.as_of, expiry=rows.expiry, strike=rows.strike, is_call=rows.is_call, oi=oi, iv=iv,
                       iv_source=src, lines=rows.lines, gamma=rows.gamma, spot=rows.spot, spot_kind=rows.spot_kind,
                       group=rows.group, notes=notes, am=am, index=(codes, chains), threads=threads, rows=keep)
    for c in out:
        c.moment = rows.moment
        s = spots.get(f"{c.chain.underlying}|{c.chain.as_of.isoformat()}")
        if s is not None:
            c.file_spot, c.file_spot_kind = s
    return out


# merged roots: 'i' if any was interpolated, else the largest ('m', the modelled surface, is never mixed with the others)
_SOURCE_RANK = {"": 0, "f": 1, "p": 2, "i": 3, "m": 4}


def build_chains(*, path: str, fmt: str, label: str, underlying: np.ndarray, as_of: np.ndarray,
                 expiry: np.ndarray, strike: np.ndarray, is_call: np.ndarray, oi: np.ndarray, iv: np.ndarray,
                 iv_source: np.ndarray, lines: np.ndarray, gamma: np.ndarray | None = None,
                 spot: np.ndarray | None = None, spot_kind: str | None = None, group: np.ndarray | None = None,
                 notes: list[str] | None = None, am: np.ndarray | None = None,
                 index=None, threads: int = 1, rows: np.ndarray | None = None) -> list[ImportedChain]:
    """Rows -> one ImportedChain per (underlying, as_of), sorted. The same contract twice is a
    malformed row, except across `group` (roots of one expiration settling alike, e.g. SPXW and SPXQ),
    where OI adds up and IV and gamma are OI-weighted. `am`: contracts that expire at the open of their
    expiration session (AM-settled roots): never merged with a PM root's (an SPX monthly and the SPXW
    contract of its third Friday are two contracts), and on that session gone before any snapshot, so
    left out. `index`: chain_index of these rows, when the caller has it. `threads` > 1: the chains are
    built in that many parts of whole chains at once (numpy releases the GIL in its sorts and gathers).
    `rows`: a mask of the rows to build from (None: all), taken as each part is cut.

    One sort of all rows by (chain, expiry, AM before PM, strike, right, group, file order) makes every
    contract's rows adjacent; duplicates, merges and the chains are then runs of that order (no per-row
    Python)."""
    notes = list(notes or [])
    codes, chains = index if index is not None else chain_index(underlying, as_of)
    use = np.ones(strike.size, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    gone = am & (expiry == as_of) & use if am is not None else None
    if gone is not None and gone.any():
        notes.append(f"{plural(int(gone.sum()), 'AM-settled contract')} expired at the session's open left out")
        use = use & ~gone
    if not use.any():
        return []
    # Not the underlying and date per row (a million Python strings to cut): chains[code] holds them.
    cols = dict(expiry=expiry, strike=strike, is_call=is_call, oi=oi, iv=iv, iv_source=np.asarray(iv_source),
                lines=lines, gamma=gamma, spot=spot, group=group, am=am, codes=codes)
    fixed = dict(path=path, fmt=fmt, label=label, spot_kind=spot_kind, chains=chains)
    try:
        made = _in_parts(codes, len(chains), threads, _assemble, cols, only=None if use.all() else use, **fixed)
    except BadInput:  # a duplicate in some part: the whole file again, for the first one in the file
        made = _assemble(**{k: (v[use] if isinstance(v, np.ndarray) else v) for k, v in cols.items()}, **fixed)
    out, merged = made
    merged_note = f"{plural(merged, 'contract')} listed under two roots merged (OI added, IV OI-weighted)" if merged else None
    for item in out:
        item.notes = list(notes) + ([merged_note] if merged_note else [])
    return out


def _assemble(*, path, fmt, label, expiry, strike, is_call, oi, iv, iv_source, lines, gamma, spot, group, am, codes,
              spot_kind, chains) -> tuple[list[ImportedChain], int]:
    """build_chains' work on rows of whole chains: (the chains, with the notes left to the caller;
    how many rows merged into another root's contract). A chain's underlying and date are chains[code]."""
    n = strike.size
    days = expiry.astype("datetime64[D]").astype(np.int64)
    if group is None:
        grp = np.zeros(n, np.int64)
    elif np.asarray(group).dtype.kind in "iu":  # coded roots (ChainRows.group_names)
        grp = np.asarray(group, dtype=np.int64)
    else:
        import pandas as pd  # lazy: roots given as text (a parser that does not code them)

        grp = pd.factorize(np.asarray(group, dtype=object))[0]
    is_call = np.asarray(is_call, dtype=bool)
    pm = np.ones(n, dtype=bool) if am is None else ~np.asarray(am, dtype=bool)
    # (chain, expiry) as one integer key; lexsort is stable, so rows that tie keep their file order.
    chain_day = codes.astype(np.int64) * (int(days.max() - days.min()) + 1) + (days - days.min())
    order = np.lexsort((grp, is_call, strike, pm, chain_day))
    c_s, e_s, k_s, call_s, g_s, pm_s = codes[order], days[order], strike[order], is_call[order], grp[order], pm[order]
    same = np.zeros(n, dtype=bool)  # this row's contract is the previous row's
    same[1:] = ((c_s[1:] == c_s[:-1]) & (e_s[1:] == e_s[:-1]) & (pm_s[1:] == pm_s[:-1]) & (k_s[1:] == k_s[:-1])
                & (call_s[1:] == call_s[:-1]))
    dup = same.copy()
    dup[1:] &= g_s[1:] == g_s[:-1]
    line_s = lines[order]
    if dup.any():
        runs = np.cumsum(~dup) - 1  # rows of one contract and group
        first_line = np.minimum.reduceat(line_s, np.flatnonzero(~dup))
        at = int(np.argmin(np.where(dup, order, n)))  # the earliest row in the file that repeats one before it
        raise BadInput(f"{path}:{int(line_s[at])}: duplicate contract (same as line {int(first_line[runs[at]])})")
    ec = expiry_close_ts(expiry, am)[order]
    gam = gamma[order] if gamma is not None else np.full(n, np.nan)
    oi_s, iv_s, src_s = oi[order], iv[order], np.asarray(iv_source)[order]
    merged = 0
    if same.any():
        starts = np.flatnonzero(~same)
        w = np.where(oi_s > 0, oi_s, 1e-12)
        wsum = np.add.reduceat(w, starts)
        has_g = np.add.reduceat(np.isfinite(gam).astype(np.int64), starts) > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            iv_m = np.add.reduceat(w * iv_s, starts) / wsum
            g_m = np.where(has_g, np.add.reduceat(np.nan_to_num(w * gam), starts) / wsum, np.nan)
        rank = np.zeros(n, dtype=np.int8)
        for code, r in _SOURCE_RANK.items():
            rank[src_s == code] = r
        names = np.array(sorted(_SOURCE_RANK, key=_SOURCE_RANK.get))
        src_s = names[np.maximum.reduceat(rank, starts)]
        oi_s, iv_s, gam = np.add.reduceat(oi_s, starts), iv_m, g_m
        line_s = np.minimum.reduceat(line_s, starts)
        c_s, e_s, k_s, call_s, ec = c_s[starts], e_s[starts], k_s[starts], call_s[starts], ec[starts]
        merged = n - starts.size
    spot_by = None
    if spot is not None:
        ok = np.isfinite(spot) & (spot > 0)
        sc, sv = codes[ok], spot[ok]
        so = np.argsort(sc, kind="stable")
        sc, sv = sc[so], sv[so]
        cut = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]]) if sc.size else np.empty(0, np.intp)
        spot_by = {int(sc[a]): float(np.median(sv[a:b])) for a, b in zip(cut, np.r_[cut[1:], sc.size])}
    bounds = np.flatnonzero(np.r_[True, c_s[1:] != c_s[:-1], True])
    expiry_d = e_s.astype("datetime64[D]")
    # Each chain's arrays are slices of these (one conversion for the file, not one per chain).
    k_s, oi_s, iv_s = (np.asarray(a, dtype=float) for a in (k_s, oi_s, iv_s))
    out: list[ImportedChain] = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):  # one short iteration per chain
        code = int(c_s[lo])
        u, d = chains[code]
        g = gam[lo:hi]
        chain = OptionChain(
            underlying=u, as_of=d.astype(dt.date), expiry=expiry_d[lo:hi], expiry_close=ec[lo:hi],
            strike=k_s[lo:hi], is_call=call_s[lo:hi], open_interest=oi_s[lo:hi],
            iv=iv_s[lo:hi], source=label, gamma=g if np.isfinite(g).any() else None,
        )
        s = spot_by.get(code) if spot_by else None
        out.append(ImportedChain(chain, fmt, path, label, src_s[lo:hi], s, spot_kind if s is not None else None))
    return out, merged


SPLIT_FROM = 100_000  # contracts: a smaller file is prepared on one thread (the split would cost more)


def _chain_parts(codes: np.ndarray, n_chains: int, n: int) -> list[np.ndarray]:
    """Row masks of up to `n` runs of whole chains (consecutive codes) with about equal row counts."""
    if n <= 1 or n_chains < 2:
        return [np.ones(codes.size, dtype=bool)]
    runs = parallel.even_runs(np.bincount(codes, minlength=n_chains).tolist(), n)
    return [(codes >= a) & (codes < b) for a, b in runs]


def _in_parts(codes: np.ndarray, n_chains: int, threads: int, fn, arrays: dict, only: np.ndarray | None = None,
              **fixed):
    """fn(**arrays cut to each part's rows, **fixed) over parts of whole chains, on `threads` engine
    threads (parallel.threads), joined: arrays of per-row results put back in row order, lists
    concatenated in part order (the chains' order), counts added. `only`: a mask of the rows to use
    (None: all); per-row results then come back for those rows alone."""
    parts = _chain_parts(codes, n_chains, threads)
    if only is not None:
        parts = [p & only for p in parts]
    cut = lambda mask: {k: (v[mask] if isinstance(v, np.ndarray) else v) for k, v in arrays.items()}  # noqa: E731
    if len(parts) == 1:
        return fn(**(arrays if only is None else cut(parts[0])), **fixed)
    pool = parallel.threads(len(parts))
    try:
        results = list(pool.map(lambda mask: fn(**cut(mask), **fixed), parts))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    joined = []
    for k, first in enumerate(results[0]):
        if isinstance(first, np.ndarray):
            whole = np.empty(codes.size, dtype=np.result_type(*(r[k] for r in results)))
            for mask, r in zip(parts, results):
                whole[mask] = r[k]
            joined.append(whole if only is None else whole[only])
        elif isinstance(first, list):
            joined.append([x for r in results for x in r[k]])
        else:
            joined.append(sum(r[k] for r in results))
    return tuple(joined)


def _derive_part(*, codes, chains, **kw):
    return derive_ivs(**kw, underlying=None, index=(codes, chains))  # the index holds the underlyings


def parity_spots(underlying, as_of, expiry, strike, is_call, mid, index=None, am=None) -> dict[str, float]:
    """Per chain ('UND|date'): the underlying implied by put-call parity from end-of-day mids, on the
    nearest expiry at least two days out that has call/put pairs (the mean mid where roots repeat one).
    `am`: AM-settled contracts, timed to their expiration session's open (and so never paired or
    averaged with the PM contracts of the same date)."""
    conv = Conventions()
    codes, chains = index if index is not None else chain_index(underlying, as_of)
    t = (expiry_close_ts(expiry, am) - session_close_ts(as_of)) / SECONDS_PER_YEAR
    ok = np.isfinite(mid) & (mid > 0) & (t >= 2 / 365)
    (pc, pt), pk, call_m, put_m, _ = _call_put_pairs((codes[ok], t[ok]), strike[ok], np.asarray(is_call, bool)[ok],
                                                  mid[ok])
    if pc.size == 0:
        return {}
    first_t = np.r_[True, pc[1:] != pc[:-1]]  # pairs are sorted by t within a chain: its nearest t first
    nearest = pt == np.repeat(pt[first_t], np.diff(np.r_[np.flatnonzero(first_t), pc.size]))
    pc, pt, pk, put_m, call_m = pc[nearest], pt[nearest], pk[nearest], put_m[nearest], call_m[nearest]
    cut = np.flatnonzero(np.r_[True, pc[1:] != pc[:-1], True])
    out: dict[str, float] = {}
    for lo, hi in zip(cut[:-1].tolist(), cut[1:].tolist()):  # a few pairs per chain
        s = parity_spot(call_m[lo:hi], put_m[lo:hi], pk[lo:hi], pt[lo:hi], conv.r, conv.q)
        if s is not None and s > 0:
            u, d = chains[int(pc[lo])]
            out[f"{u}|{d}"] = s
    return out


def derive_ivs(*, underlying, as_of, expiry, strike, is_call, file_iv, mid=None, spot_by_chain=None, am=None,
               interpolate=True, index=None):
    """IV per contract and where it came from: the file's own when positive ('f'); else from the
    option's end-of-day mid price by Black-Scholes ('p') at its expiry's forward implied by put-call
    parity (options on futures-priced underlyings such as VIX are priced off that forward, not the
    cash index), at the chain's spot where the expiry has no call/put pair; else, with `interpolate`,
    interpolated across strikes of the same expiry ('i'); NaN when none of these exists (the caller
    drops and says so)."""
    conv = Conventions()
    codes, chains = index if index is not None else chain_index(underlying, as_of)
    iv = np.where(np.isfinite(file_iv) & (file_iv > 0), file_iv, np.nan)
    src = np.where(np.isfinite(iv), "f", "")
    if mid is not None and spot_by_chain:
        need = ~np.isfinite(iv)
        if need.any():
            per_chain = np.array([spot_by_chain.get(f"{u}|{d}", np.nan) for u, d in chains], dtype=float)
            s = per_chain[codes[need]]
            ec = expiry_close_ts(expiry, am)
            # Usually a few per cent of a file's contracts need an IV from their mid: only their expiries.
            fwd = forward_spots(as_of, strike, is_call, mid, ec, codes, wanted=need)[need]
            s = np.where(np.isfinite(fwd), fwd, s)
            t = (ec[need] - session_close_ts(as_of[need])) / SECONDS_PER_YEAR
            got = implied_vol(mid[need], s, strike[need], t, conv.r, conv.q, is_call[need])
            iv[need] = got
            src[np.flatnonzero(need)[np.isfinite(got)]] = "p"
    before = np.isfinite(iv)
    if not interpolate:
        return iv, src
    days = expiry.astype("datetime64[D]").astype(np.int64)
    iv = fill_iv_by_strike(codes * (1 << 32) + (days - days.min() if days.size else days), strike, iv)
    src[np.isfinite(iv) & ~before] = "i"
    return iv, src


def forward_spots(as_of, strike, is_call, mid, expiry_ts, codes, wanted=None) -> np.ndarray:
    """Per contract: the spot that puts its expiry's forward into Black-Scholes, S = F e^{-(r-q)T}, F
    from put-call parity (F = K + e^{rT} (C - P)) as the median over the five call/put pairs nearest
    the money (smallest |C - P|); NaN where the expiry has no pair of positive mids. A strike quoted
    twice on one side (two roots that settle alike) counts at its mean mid. `wanted`: the contracts
    whose value is needed (expiries on other days than theirs are skipped: NaN there). By sorts, no per-group
    Python: a market-wide file has tens of thousands of expiries."""
    conv = Conventions()
    t = (expiry_ts - session_close_ts(as_of)) / SECONDS_PER_YEAR
    ets = expiry_ts.astype(np.int64)
    key = codes.astype(np.int64) * (1 << 34) + (ets - ets.min() if ets.size else ets)  # (chain, expiry close)
    out = np.full(key.size, np.nan)
    usable = np.isfinite(mid) & (mid > 0) & (t > 0)
    if wanted is not None:
        usable &= _in_wanted_expiries(codes, ets, wanted)
    ok = np.flatnonzero(usable)
    # The key holds the expiry's close, so it determines t: t is carried, not sorted on.
    (pg,), pk, call_m, put_m, (pt,) = _call_put_pairs((key[ok],), strike[ok], is_call[ok], mid[ok], carry=(t[ok],))
    if pg.size == 0:
        return out
    diff = call_m - put_m
    # The five pairs of each expiry nearest the money, then the median of their forwards.
    near = np.lexsort((np.abs(diff), pg))
    pg, pk, pt, diff = pg[near], pk[near], pt[near], diff[near]
    new = np.ones(pg.size, dtype=bool)
    new[1:] = pg[1:] != pg[:-1]
    begin = np.flatnonzero(new)
    rank = np.arange(pg.size) - np.repeat(begin, np.diff(np.append(begin, pg.size)))
    keep = rank < 5
    pg, fwd, pt = pg[keep], (pk + np.exp(conv.r * pt) * diff)[keep], pt[keep]
    by = np.lexsort((fwd, pg))
    pg, fwd, pt = pg[by], fwd[by], pt[by]
    new = np.ones(pg.size, dtype=bool)
    new[1:] = pg[1:] != pg[:-1]
    begin = np.flatnonzero(new)
    n = np.diff(np.append(begin, pg.size))
    median = (fwd[begin + (n - 1) // 2] + fwd[begin + n // 2]) / 2
    spot_eq = median * np.exp(-(conv.r - conv.q) * pt[begin])
    groups = pg[begin]
    good = spot_eq > 0
    groups, spot_eq = groups[good], spot_eq[good]
    pos = np.searchsorted(groups, key)
    found = (pos < groups.size) & (groups[np.minimum(pos, groups.size - 1)] == key)
    out[found] = spot_eq[pos[found]]
    return out


def _in_wanted_expiries(codes: np.ndarray, ets: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Per contract: whether a wanted contract shares its chain and expiration day. By a table over
    (chain, day) instead of a sort of a million keys; a sort only for absurd spans."""
    if not wanted.any():
        return np.zeros(codes.size, dtype=bool)
    day = ets.astype(np.int64) // 86_400  # AM and PM expiries of one date share it: a superset, harmless
    lo, span = int(day.min()), int(day.max() - day.min()) + 1
    cell = codes.astype(np.int64) * span + (day - lo)
    if (int(codes.max()) + 1) * span > 20_000_000:
        return np.isin(cell, np.unique(cell[wanted]))
    table = np.zeros((int(codes.max()) + 1) * span, dtype=bool)
    table[cell[wanted]] = True
    return table[cell]


def _call_put_pairs(keys: tuple[np.ndarray, ...], strike, is_call, mid, carry: tuple[np.ndarray, ...] = ()):
    """The call/put pairs among quotes grouped by `keys` (arrays of equal length; a pair is a call and
    a put of one key and strike), with a side quoted twice (two roots that settle alike) at its mean
    mid: (each key array per pair, strike, call mid, put mid, each `carry` array per pair), sorted by the
    keys, then strike. `carry`: arrays that the keys determine (not sorted on, only gathered)."""
    if strike.size == 0:
        return [a[:0] for a in keys], strike[:0], mid[:0], mid[:0], [a[:0] for a in carry]
    order = np.lexsort((is_call, strike, *keys[::-1]))
    ks, k, c, m = [a[order] for a in keys], strike[order], is_call[order], mid[order]
    start = np.flatnonzero(~np.r_[False, _next_equal(*ks, k, c)])  # one run per (keys, strike, side)
    mean = np.add.reduceat(m, start) / np.diff(np.append(start, m.size))
    ks, k, c = [a[start] for a in ks], k[start], c[start]
    put_i = np.flatnonzero(~c[:-1] & c[1:] & _next_equal(*ks, k))  # a put run, then the call run of its strike
    rows = order[start[put_i]]
    return [a[put_i] for a in ks], k[put_i], mean[put_i + 1], mean[put_i], [a[rows] for a in carry]


def _next_equal(*arrays: np.ndarray) -> np.ndarray:
    """Per position but the last: whether the next one holds the same value in every array."""
    same = np.ones(max(arrays[0].size - 1, 0), dtype=bool)
    for a in arrays:
        same &= a[1:] == a[:-1]
    return same


def expiry_close_ts(expiry: np.ndarray, am: np.ndarray | None = None) -> np.ndarray:
    """POSIX seconds of each expiration's close: the last session on or before the date (a Saturday
    expiration of old monthlies trades last on the Friday); 16:00 ET beyond the known calendar. Where
    `am` (AM-settled roots), that session's open instead (09:30 ET beyond the calendar)."""
    uniq, inv = unique_days(expiry)
    closes = np.empty(uniq.size)
    opens = np.empty(uniq.size)
    today = dt.date.today()
    for j, d in enumerate(uniq.astype(dt.date)):
        closes[j], opens[j] = _expiry_session(d, today)
    if am is None:
        return closes[inv]
    return np.where(am, opens[inv], closes[inv])


@lru_cache(maxsize=1 << 16)
def _expiry_session(day: dt.date, today: dt.date) -> tuple[float, float]:
    """(close, open) POSIX seconds of the session an expiration on `day` trades last in, as
    expiry_close_ts says; kept per day, since a backfill or a spilled import asks chain by chain."""
    found = sessions_between(day - dt.timedelta(days=7), day) if day <= _calendar_end(today) else []
    if found:  # the session on the date, or the one before a weekend/holiday expiration
        return found[-1].close.timestamp(), found[-1].open.timestamp()
    return (dt.datetime.combine(day, dt.time(16, 0), tzinfo=ET).timestamp(),
            dt.datetime.combine(day, dt.time(9, 30), tzinfo=ET).timestamp())


@lru_cache(maxsize=4)
def _calendar_end(today: dt.date) -> dt.date:
    """The last day the session calendar knows."""
    known = sessions_between(today, today + dt.timedelta(days=800))
    return known[-1].date if known else today


def session_close_ts(as_of: np.ndarray) -> np.ndarray:
    """POSIX seconds of each as-of session's close (the moment an EOD file's quotes describe)."""
    uniq, inv = unique_days(as_of)
    return np.array([session_on(d).close.timestamp() for d in uniq.astype(dt.date)] + [0.0])[inv]
