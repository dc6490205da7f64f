"""Imported chains into the database and back: the second half of `gexhistory import-chains`
(pipeline/import_chains.py reads and checks the files), and the stored chains a later backfill or
profile reads.

`store_sessions` plans each chain's spots, computes its sessions through the GEX engine and writes
them in one transaction with the chains themselves (module docstring of import_chains for the rules).
This module loads SQLAlchemy and the store: import_chains loads it on a thread while the files are
read, so that start-up overlaps the read.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sqlalchemy import inspect

from gexhistory.calendar import ET, format_ts, session_on, sessions_before
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import Conventions, compute_gex
from gexhistory.engine.summary import CORR_WINDOW, none_if_nan, rolling_price_gex_corr
from gexhistory.errors import BadInput
from gexhistory.pipeline import parallel
from gexhistory.pipeline.chain_pack import chain_from_stored, contract_columns
from gexhistory.pipeline.compute import session_rows
from gexhistory.pipeline.outcomes import settle_symbols
from gexhistory.pipeline.runs import TABLES, ProgressFn, versions
from gexhistory.sources.base import MinuteBars
from gexhistory.store import chains as cs
from gexhistory.store import writes
from gexhistory.store.db import checkpoint_in_background, init_schema, open_engine
from gexhistory.store.packed import pack_chains
from gexhistory.store.schema import SESSION_TABLES

SESSION_TABLE_NAMES = tuple(t.name for t in SESSION_TABLES)  # the four tables a session's rows go to
COMPUTE_BATCH = 480  # sessions per compute_gex call (it works CHUNK_PAIRS at a time): progress between calls
BATCH_CONTRACTS = 500_000  # a spilled import's batch also ends past this many contracts (_batches)
PACK_PARTS = 6  # chains packed in this many parts, which the engine thread and this one share
WRITE_BATCH = 1000  # sessions per executemany of each table
COMPUTE, WRITE = "computing sessions", "writing sessions"  # progress labels


@dataclass(frozen=True, slots=True)
class _CloseOnly:
    """A session seen only at its close: the one snapshot whose price an EOD chain file knows."""

    date: dt.date
    close: dt.datetime

    def snapshot_times(self) -> list[dt.datetime]:
        return [self.close]


def _spots(item, session, minutes, daily):
    """(times, spots, data_source, spot_source) for one imported chain's session, from its stored
    real minute bars and daily close (cs.minute_bars_of / cs.daily_close_of, None when none)."""
    sym, day = item.chain.underlying, item.chain.as_of
    if minutes is not None:
        bars, src = minutes
        o = np.full((1, 390), np.nan)
        c = np.full((1, 390), np.nan)
        for ts, op, cl in bars:
            t = dt.datetime.fromisoformat(ts).replace(tzinfo=session.open.tzinfo)
            m = int((t - session.open).total_seconds() // 60)
            if 0 <= m < 390:
                o[0, m], c[0, m] = op if op is not None else np.nan, cl
        times = session.snapshot_times()
        spots = MinuteBars(sym, [session], o, c, np.zeros_like(c), src).spots_at([times])[0]
        if np.isfinite(spots).all():
            return session, spots, src, sys.intern(f"minute bars ({src})")
    close_only = _CloseOnly(session.date, session.close)
    implied = item.file_spot_kind is not None and item.file_spot_kind.startswith("implied")
    if item.file_spot is not None and not implied:
        return close_only, [item.file_spot], item.label, sys.intern(f"file: {item.file_spot_kind}")
    if daily is not None:
        return close_only, [daily[0]], daily[1], sys.intern(f"daily close ({daily[1]})")
    if item.file_spot is not None:
        return close_only, [item.file_spot], item.label, sys.intern(f"file: {item.file_spot_kind}")
    raise BadInput(f"{item.file}: no underlying price for {sym} on {day}: the file has none and no real bars "
                   f"are stored; add a spot column or backfill real bars first")



def store_sessions(items: list, *, db: str | None, conv: Conventions, threads: int,
                   params: dict, progress: ProgressFn | None = None, command: str = "import-chains",
                   source: str = "chain files") -> tuple[int, list[dict], dict]:
    """Store the parsed chains `items` (import_chains.parse_files) and replace the sessions they cover,
    in one transaction; `command`, `source` and `params` go to the run's row in backfill_runs. Returns (run_id, per-session
    summaries, per-table totals). `threads` > 1: the chains are packed on an engine thread meanwhile.

    A file of a whole market holds thousands of chains: the database is asked per batch of symbols,
    not per chain, and every chain goes through the engine in one compute_gex call per batch."""
    from gexhistory.pipeline.chain_spill import SpilledChain  # lazy: the parser's modules, loaded by an import only

    report = progress or (lambda *_: None)
    # The chains are packed for storage (Arrow streams, LZ4: C++ that releases the GIL) in parts, on an
    # engine thread while this one plans and computes the sessions; this one then packs the parts the
    # engine thread has not begun.
    # Spilled chains (chain_spill) are packed already, and written a batch at a time.
    spilled = any(isinstance(p, SpilledChain) for p in items)
    pool = parallel.threads(1) if threads > 1 and not spilled else None
    parts = _parts(items, PACK_PARTS if pool is not None else 1) if not spilled else []
    packing = [pool.submit(_packed, part) for part in parts] if pool is not None else None
    try:
        engine = open_engine(db, deferred_checkpoint=True)  # checkpointed on a thread after the commit
        init_schema(engine)
        symbols = sorted({p.chain.underlying for p in items})
        days = [p.chain.as_of for p in items]
        keys = {(p.chain.underlying, p.chain.as_of) for p in items}
        with engine.connect() as conn:  # read-only: a session without any price is bad input, found before writing
            minutes = cs.stored_bars_many(conn, "1m", keys)
            daily = cs.stored_bars_many(conn, "1d", keys)
            planned = []
            for p in items:
                key = (p.chain.underlying, p.chain.as_of)
                planned.append((p, *_spots(p, session_on(p.chain.as_of), cs.minute_bars_of(minutes.get(key)),
                                           cs.daily_close_of(daily.get(key)))))
            history = cs.summaries_between_many(conn, symbols, min(days) - dt.timedelta(days=45), max(days))
        del minutes, daily
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    run_id = writes.start_run(engine, command, symbols, min(days), max(days), source, params,
                              versions(), format_ts(dt.datetime.now(ET)))
    totals = {t: {"inserted": 0, "replaced": 0} for t in TABLES}
    try:
        if spilled:
            sessions_out = _store_in_batches(engine, planned, symbols, min(days), max(days), history, conv,
                                             run_id, totals, report, threads)
        else:
            sessions_out, computed = [], []
            report(COMPUTE, 0, len(planned))
            for lo in range(0, len(planned), COMPUTE_BATCH):
                block = planned[lo:lo + COMPUTE_BATCH]
                computed += _compute(block, [b[0] for b in block], conv, history, sessions_out,
                                     lambda k: report(COMPUTE, k, len(planned)))
            now = format_ts(dt.datetime.now(ET))
            with engine.begin() as conn:
                writes.lock_symbols(conn, symbols)
                cs.replace_packed_chains(conn, [_header(item, now) for item in items], _gather(parts, packing))
                holding = writes.symbols_holding(conn, symbols, min(days), max(days))
                for lo in range(0, len(computed), WRITE_BATCH):
                    _write(conn, computed[lo:lo + WRITE_BATCH], holding, run_id, totals)
                    hi = min(lo + WRITE_BATCH, len(computed))
                    for j in range(lo + 1, hi + 1):  # committed together, with the last one
                        report(WRITE, j, len(computed))
    except BaseException as exc:
        writes.finish_run(engine, run_id, "failed", totals, format_ts(dt.datetime.now(ET)),
                          str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    # Replacing a session removed its signal row (an import computes none), which moves the confidence
    # of its pattern's later signals: settle outcomes and confidence as a backfill does.
    settle_symbols(engine, symbols)
    writes.finish_run(engine, run_id, "ok", totals, format_ts(dt.datetime.now(ET)))
    checkpoint_in_background(engine)
    engine.dispose()
    return run_id, sessions_out, totals


def _compute(block: list, chained: list, conv: Conventions, history: dict, sessions_out: list,
             done) -> list[tuple]:
    """The sessions of `block` (planned entries: item, session, spots, data_source, spot_source), whose
    items' chains are `chained` (the items themselves, or spilled ones loaded back), through the engine
    in one compute_gex call: (symbol, date, the four tables' rows) each, in order; the summary of each
    goes to `sessions_out`, its close to `history` (for the later sessions' price/GEX correlation);
    `done(sessions computed in all)` after each (the caller's display throttles its lines)."""
    snaps_of = compute_gex([c.chain for c in chained], [b[2] for b in block], [b[1].snapshot_times() for b in block],
                           conv)
    computed = []
    for (item, sess, spots, data_source, spot_source), snaps in zip(block, snaps_of):
        sym = item.chain.underlying
        history[sym][sess.date] = (snaps[-1].spot, snaps[-1].net_gex)
        corr = _corr(history[sym], sess.date)
        computed.append((sym, sess.date, session_rows(sym, sess, snaps, corr, data_source, item.label)))
        close = snaps[-1]
        sessions_out.append({"symbol": sym, "date": sess.date.isoformat(), "snapshots": len(snaps),
                             "spot_source": spot_source, "chain_source": item.label,
                             "net_gex": close.net_gex, "flip_point": close.flip_point,
                             "call_wall": close.call_wall, "put_wall": close.put_wall, "regime": close.regime})
        done(len(sessions_out))
    return computed


def _write(conn, computed: list[tuple], holding: set[str], run_id: int, totals: dict) -> None:
    """Replace the stored rows of the `computed` sessions (one executemany per table), counting in `totals`."""
    batch = {name: [] for name in SESSION_TABLE_NAMES}
    for sym, day, rows in computed:
        # Only a symbol with stored rows in the span has anything to remove (a first import has none).
        removed = writes.delete_sessions(conn, sym, [day]) if sym in holding else dict.fromkeys(batch, 0)
        for name in SESSION_TABLE_NAMES:
            for r in rows[name]:
                r["run_id"] = run_id
            batch[name] += rows[name]
            totals[name]["replaced"] += removed[name]
            totals[name]["inserted"] += max(0, len(rows[name]) - removed[name])
    for name, table in zip(SESSION_TABLE_NAMES, SESSION_TABLES):
        writes.insert_rows(conn, table, batch[name])


def _store_in_batches(engine, planned: list, symbols: list[str], first: dt.date, last: dt.date, history: dict,
                      conv: Conventions, run_id: int, totals: dict, report, threads: int) -> list[dict]:
    """store_sessions for an import whose chains were spilled (chain_spill): the one transaction is
    open while the sessions are computed, a batch of chains at a time (_batches) loaded back, computed, and
    written with their chains, so that memory holds one batch, not the import. With engine `threads`
    > 1 the next batch is loaded on a thread while this one is computed and written."""
    sessions_out: list[dict] = []
    now = format_ts(dt.datetime.now(ET))
    spans = _batches([len(b[0].chain) for b in planned])
    blocks = [planned[lo:hi] for lo, hi in spans]
    pool = parallel.threads(1) if threads > 1 else None
    load = (lambda b: pool.submit(_loaded, b)) if pool is not None else (lambda b: _done(_loaded(b)))
    report(COMPUTE, 0, len(planned))
    try:
        with engine.begin() as conn:
            writes.lock_symbols(conn, symbols)
            holding = writes.symbols_holding(conn, symbols, first, last)
            coming = load(blocks[0])
            for k, block in enumerate(blocks):
                packed, chained = coming.result()
                if k + 1 < len(blocks):
                    coming = load(blocks[k + 1])
                blocks[k] = None  # a batch done is let go: what memory keeps is the sessions' summaries
                lo, hi = spans[k]
                planned[lo:hi] = [None] * len(block)
                items = [b[0] for b in block]
                computed = _compute(block, chained, conv, history, sessions_out,
                                    lambda n: report(COMPUTE, n, len(planned)))
                cs.replace_packed_chains(conn, [_header(p, now) for p in items], packed)
                _write(conn, computed, holding, run_id, totals)
                for j in range(len(sessions_out) - len(block) + 1, len(sessions_out) + 1):  # committed with the last
                    report(WRITE, j, len(planned))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return sessions_out


def _batches(sizes: list[int]) -> list[tuple[int, int]]:
    """(lo, hi) of each batch of a spilled import: COMPUTE_BATCH chains, or fewer once they hold
    BATCH_CONTRACTS contracts (a year of SPX from import-oi is 250 chains of ~30,000 contracts: loaded
    back all at once, they would cost more memory than never spilling)."""
    out, lo, held = [], 0, 0
    for i, n in enumerate(sizes):
        if i > lo and (i - lo >= COMPUTE_BATCH or held + n > BATCH_CONTRACTS):
            out.append((lo, i))
            lo, held = i, 0
        held += n
    if lo < len(sizes):
        out.append((lo, len(sizes)))
    return out


def _done(value) -> Future:
    """A future already holding `value` (the batch loaded on this thread, without engine threads)."""
    f: Future = Future()
    f.set_result(value)
    return f


def _loaded(block: list) -> tuple[list[tuple[int, bytes]], list]:
    """A batch's chains as stored (read back from the spill) and as the engine takes them. Every chain
    of a spilled import is spilled (chain_spill.HeldChains spills what chain_union made too)."""
    from gexhistory.pipeline.chain_spill import load_many

    items = [b[0] for b in block]
    packed = [p.packed() for p in items]
    return packed, load_many(items, [blob for _, blob in packed])


def _corr(history: dict[dt.date, tuple[float, float]], day: dt.date) -> float | None:
    span = _corr_span(day)
    if len(span) < CORR_WINDOW + 1 or any(d not in history for d in span):
        return None
    prices = np.array([history[d][0] for d in span], dtype=float)
    gex = np.array([history[d][1] for d in span], dtype=float)
    return none_if_nan(rolling_price_gex_corr(prices, gex)[-1])


@lru_cache(maxsize=4096)
def _corr_span(day: dt.date) -> tuple[dt.date, ...]:
    """The sessions of the price/GEX correlation ending on `day`: a market-wide file's thousands of
    sessions share one day."""
    return (*(s.date for s in sessions_before(day, CORR_WINDOW)), day)


def _header(item, now: str) -> dict:
    c = item.chain
    return {"underlying": c.underlying, "as_of": c.as_of.isoformat(), "chain_source": item.label, "format": item.fmt,
            "file": str(item.file), "file_spot": item.file_spot, "file_spot_kind": item.file_spot_kind,
            "contracts": len(c), "notes": json.dumps(item.notes), "imported_at": now}


def _packed(items) -> list[tuple[int, bytes]]:
    """Every chain's contracts packed for storage (store/chains.replace_packed_chains)."""
    return pack_chains(*contract_columns(items), len(items))


def _parts(items: list, n: int) -> list[list]:
    """`items` cut into at most n runs of about equal contract counts, in order."""
    return [items[a:b] for a, b in parallel.even_runs([len(p.chain) for p in items], n)]


def _gather(parts: list[list], futures) -> list[tuple[int, bytes]]:
    """The packed parts, in order: a part the engine thread has not begun is packed here (taken from
    the end, while that thread works from the start)."""
    if futures is None:
        return [x for part in parts for x in _packed(part)]
    done: list = [None] * len(parts)
    for k in reversed(range(len(parts))):
        if futures[k].cancel():
            done[k] = _packed(parts[k])
    return [x for k, f in enumerate(futures) for x in (done[k] if done[k] is not None else f.result())]


def stored_chain(conn, header: dict) -> OptionChain:
    """An imported chain as stored, rebuilt into the record the engine takes."""
    day = dt.date.fromisoformat(header["as_of"])
    a = cs.chain_contracts(conn, header["underlying"], day, header["chain_source"])
    return chain_from_stored(header["underlying"], day, header["chain_source"], a)


def chain_lookup(engine, symbol: str, start: dt.date, end: dt.date):
    """A function date -> the stored imported chain for `symbol` on that date, or None. Only dates
    that have one touch the database again."""
    with engine.connect() as conn:
        has_table = "option_chains" in inspect(conn).get_table_names()
        headers = cs.latest_chains(conn, symbol, start, end) if has_table else {}

    def lookup(day: dt.date) -> OptionChain | None:
        h = headers.get(day)
        if h is None:
            return None
        with engine.connect() as conn:
            return stored_chain(conn, h)

    lookup.dates = headers  # type: ignore[attr-defined]
    return lookup
