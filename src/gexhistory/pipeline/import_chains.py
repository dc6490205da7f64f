"""`gexhistory import-chains`: real option chains -> the same GEX engine -> the session tables.

Order of work, so that bad input changes nothing:
1. every file is parsed and validated (a file that is not a chain, or any malformed row, raises
   BadInput naming file:line before the database is opened);
2. the spots and the GEX of every covered session are computed;
3. one transaction stores the chains (option_chains, option_chain_contracts) and replaces those
   sessions' rows in gex_history, gamma_history, gamma_daily_summary and regime_signals, labelled
   chain_source = the file's source.

Spots: with stored real minute bars for the session (price_bars, timeframe 1m, not synthetic) the
four snapshot times are written, priced from those bars. Without them only the end-of-day snapshot
(the session close) is written, because only it has a known price: the file's own underlying price
when it has one, else the stored real daily close, else the underlying the file implies (put-call
parity or the quoted underlying mid). Rows priced from the file carry data_source = the file's label;
rows priced from stored bars carry the bars' data_source.

A later backfill reuses the stored chains (`chain_lookup`), so `backfill --force` recomputes those
sessions from the imported chain, never silently from the modelled one.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import inspect

from gexhistory.calendar import ET, format_ts, session_on, sessions_before
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import Conventions, compute_gex
from gexhistory.engine.summary import CORR_WINDOW, none_if_nan, rolling_price_gex_corr
from gexhistory.errors import BadInput
from gexhistory.pipeline import parallel
from gexhistory.pipeline.compute import session_rows
from gexhistory.pipeline.outcomes import settle_signals
from gexhistory.pipeline.runs import TABLES, ProgressFn, versions
from gexhistory.sources.base import MinuteBars
from gexhistory.store import chains as cs
from gexhistory.store import writes
from gexhistory.store.db import init_schema, open_engine
from gexhistory.store.schema import gamma_daily_summary, gamma_history, gex_history, regime_signals


@dataclass(frozen=True)
class _CloseOnly:
    """A session seen only at its close: the one snapshot whose price an EOD chain file knows."""

    date: dt.date
    close: dt.datetime

    def snapshot_times(self) -> list[dt.datetime]:
        return [self.close]


@dataclass
class ImportResult:
    """What a chain import did (``gx.import_chains``'s return value; ``as_dict()`` is the CLI's ``--json``).

    Attributes
    ----------
    run_id : int
        Its row in backfill_runs (command "import-chains").
    files : list of dict
        Per file: format, chain_source, chains, contracts, underlyings, first/last date, notes.
    sessions : list of dict
        Per recomputed session: symbol, date, snapshots, spot_source, chain_source and the close
        snapshot's net_gex, flip_point, walls and regime.
    totals : dict
        Per table: rows inserted and replaced.
    elapsed : float
        Seconds.
    notes : list of str
    """

    run_id: int
    files: list[dict]
    sessions: list[dict]
    totals: dict[str, dict[str, int]]
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready summary (the CLI's ``--json``)."""
        return {"run_id": self.run_id, "files": self.files, "sessions": self.sessions, "totals": self.totals,
                "elapsed_seconds": round(self.elapsed, 3), "notes": self.notes}


READ, COMPUTE, WRITE = "reading chain files", "computing sessions", "writing sessions"  # progress labels


def parse_files(files: list[str], *, oi_file: str | None = None, volume_as_oi: bool = False,
                underlying: str | None = None, jobs: int = 1, cluster: str | None = None,
                progress: ProgressFn | None = None):
    """Parse and validate every file (nothing written); BadInput on the first bad file, in the order
    given. With `jobs` > 1 the files are read by that many local worker processes, with `cluster` (a
    Dask scheduler address) by the cluster's workers, which must see the files at the same paths.
    `progress(READ, files read, files)` follows them."""
    from gexhistory.pipeline.chain_prep import read_chain_file  # lazy: pandas, only when files are read

    if not files:
        raise BadInput("give at least one chain file")
    if oi_file and volume_as_oi:
        raise BadInput("give either --oi-file or --volume-as-oi, not both")
    if not isinstance(jobs, int) or not 1 <= jobs <= 64:
        raise BadInput(f"--jobs must be between 1 and 64, got {jobs}")
    address = parallel.cluster_address(cluster)
    options = {"oi_file": oi_file, "volume_as_oi": volume_as_oi, "underlying": underlying}
    report = progress or (lambda *_: None)
    report(READ, 0, len(files))
    parsed = []
    if address or (jobs > 1 and len(files) > 1):
        pool = parallel.cluster_pool(address) if address else parallel.local_pool(min(jobs, len(files)))
        try:
            futures = [pool.submit(read_chain_file, f, **options) for f in files]
            for k, f in enumerate(futures, 1):  # in the order given: the first bad file is the one reported
                parsed += parallel.result_of(f)
                report(READ, k, len(files))
        except BaseException:
            pool.close(cancel=True)
            raise
        pool.close()
    else:
        for k, f in enumerate(files, 1):
            parsed += read_chain_file(f, **options)
            report(READ, k, len(files))
    if (oi_file or volume_as_oi) and not any(p.fmt == "optionsdx" for p in parsed):
        raise BadInput("--oi-file and --volume-as-oi apply to OptionsDX files, and none was given")
    # The same underlying and date twice in one import: the later file wins, as it would in two imports.
    last = {(p.chain.underlying, p.chain.as_of): p for p in parsed}
    return sorted(last.values(), key=lambda p: (p.chain.underlying, p.chain.as_of))


def _spots(conn, item, session):
    """(times, spots, data_source, spot_source) for one imported chain's session."""
    sym, day = item.chain.underlying, item.chain.as_of
    minutes = cs.stored_minute_bars(conn, sym, day)
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
            return session, spots, src, f"minute bars ({src})"
    close_only = _CloseOnly(session.date, session.close)
    implied = item.file_spot_kind is not None and item.file_spot_kind.startswith("implied")
    if item.file_spot is not None and not implied:
        return close_only, [item.file_spot], item.label, f"file: {item.file_spot_kind}"
    daily = cs.stored_daily_close(conn, sym, day)
    if daily is not None:
        return close_only, [daily[0]], daily[1], f"daily close ({daily[1]})"
    if item.file_spot is not None:
        return close_only, [item.file_spot], item.label, f"file: {item.file_spot_kind}"
    raise BadInput(f"{item.file}: no underlying price for {sym} on {day}: the file has none and no real bars "
                   f"are stored; add a spot column or backfill real bars first")


def import_chains(files: list[str], *, db: str | None = None, oi_file: str | None = None,
                  volume_as_oi: bool = False, underlying: str | None = None,
                  conv: Conventions | None = None, jobs: int = 1, cluster: str | None = None,
                  progress: ProgressFn | None = None) -> ImportResult:
    """Import option-chain files and recompute the GEX of the sessions they cover (module docstring).
    Every file is read (one task per file: `jobs` local processes or a Dask `cluster`) and checked
    before the database is opened; then one transaction stores the chains and replaces the sessions.
    `progress(label, done, total)` follows the files read, the sessions computed and those written."""
    t0 = time.perf_counter()
    conv = conv or Conventions()
    report = progress or (lambda *_: None)
    items = parse_files(files, oi_file=oi_file, volume_as_oi=volume_as_oi, underlying=underlying, jobs=jobs,
                        cluster=cluster, progress=progress)
    engine = open_engine(db)
    init_schema(engine)
    symbols = sorted({p.chain.underlying for p in items})
    days = [p.chain.as_of for p in items]
    with engine.connect() as conn:  # read-only: a session without any price is bad input, found before writing
        planned = [(p, *_spots(conn, p, session_on(p.chain.as_of))) for p in items]
        history = {s: cs.summaries_between(conn, s, min(days) - dt.timedelta(days=45), max(days)) for s in symbols}
    params = {"conventions": conv.as_dict(), "files": list(files), "oi_file": oi_file, "volume_as_oi": volume_as_oi}
    run_id = writes.start_run(engine, "import-chains", symbols, min(days), max(days), "chain files", params,
                              versions(), format_ts(dt.datetime.now(ET)))
    totals = {t: {"inserted": 0, "replaced": 0} for t in TABLES}
    try:
        computed, sessions_out = [], []
        report(COMPUTE, 0, len(planned))
        for k, (item, sess, spots, data_source, spot_source) in enumerate(planned, 1):
            snaps = compute_gex([item.chain], [spots], [sess.snapshot_times()], conv)[0]
            sym = item.chain.underlying
            history[sym][sess.date] = (snaps[-1].spot, snaps[-1].net_gex)
            corr = _corr(history[sym], sess.date)
            rows = session_rows(sym, sess, snaps, corr, data_source, item.label)
            computed.append((sym, sess.date, rows))
            close = snaps[-1]
            sessions_out.append({"symbol": sym, "date": sess.date.isoformat(), "snapshots": len(snaps),
                                 "spot_source": spot_source, "chain_source": item.label, "net_gex": close.net_gex,
                                 "flip_point": close.flip_point, "call_wall": close.call_wall,
                                 "put_wall": close.put_wall, "regime": close.regime})
            report(COMPUTE, k, len(planned))
        now = format_ts(dt.datetime.now(ET))
        with engine.begin() as conn:
            for sym in symbols:
                writes.lock_symbol(conn, sym)
            for item in items:
                cs.replace_chain(conn, _header(item, now), _contracts(item))
            for k, (sym, day, rows) in enumerate(computed, 1):
                removed = writes.delete_sessions(conn, sym, [day])
                for name, table in (("gex_history", gex_history), ("gamma_history", gamma_history),
                                    ("gamma_daily_summary", gamma_daily_summary), ("regime_signals", regime_signals)):
                    for r in rows[name]:
                        r["run_id"] = run_id
                    writes.insert_rows(conn, table, rows[name])
                    totals[name]["replaced"] += removed[name]
                    totals[name]["inserted"] += max(0, len(rows[name]) - removed[name])
                report(WRITE, k, len(computed))  # committed together, when the last one is written
    except BaseException as exc:
        writes.finish_run(engine, run_id, "failed", totals, format_ts(dt.datetime.now(ET)),
                          str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    # Replacing a session removed its signal row (an import computes none), which moves the confidence
    # of its pattern's later signals: settle outcomes and confidence as a backfill does.
    for sym in symbols:
        settle_signals(engine, sym)
    writes.finish_run(engine, run_id, "ok", totals, format_ts(dt.datetime.now(ET)))
    engine.dispose()
    res = ImportResult(run_id, _file_summary(items), sessions_out, totals, time.perf_counter() - t0)
    if any(s["snapshots"] == 1 for s in sessions_out):
        res.notes.append("sessions without stored minute bars got only their end-of-day snapshot (the only "
                         "one whose price the file knows)")
    return res


def _corr(history: dict[dt.date, tuple[float, float]], day: dt.date) -> float | None:
    span = [s.date for s in sessions_before(day, CORR_WINDOW)] + [day]
    if len(span) < CORR_WINDOW + 1 or any(d not in history for d in span):
        return None
    prices = np.array([history[d][0] for d in span], dtype=float)
    gex = np.array([history[d][1] for d in span], dtype=float)
    return none_if_nan(rolling_price_gex_corr(prices, gex)[-1])


def _header(item, now: str) -> dict:
    c = item.chain
    return {"underlying": c.underlying, "as_of": c.as_of.isoformat(), "chain_source": item.label, "format": item.fmt,
            "file": str(item.file), "file_spot": item.file_spot, "file_spot_kind": item.file_spot_kind,
            "contracts": len(c), "notes": json.dumps(item.notes), "imported_at": now}


def _contracts(item) -> list[dict]:
    c = item.chain
    gamma = c.gamma if c.gamma is not None else np.full(len(c), np.nan)
    exp = c.expiry.astype(str)
    return [
        {"underlying": c.underlying, "as_of": c.as_of.isoformat(), "expiration": exp[i], "strike": float(c.strike[i]),
         "right": "C" if c.is_call[i] else "P", "chain_source": item.label,
         "open_interest": float(c.open_interest[i]), "iv": float(c.iv[i]), "iv_source": str(item.iv_source[i]),
         "gamma": float(gamma[i]) if np.isfinite(gamma[i]) else None}
        for i in range(len(c))
    ]


def _file_summary(items) -> list[dict]:
    by_file: dict[str, dict] = {}
    for p in items:
        f = by_file.setdefault(str(p.file), {"file": str(p.file), "format": p.fmt, "chain_source": p.label,
                                             "chains": 0, "contracts": 0, "underlyings": [], "dates": [],
                                             "notes": []})
        f["chains"] += 1
        f["contracts"] += len(p.chain)
        if p.chain.underlying not in f["underlyings"]:
            f["underlyings"].append(p.chain.underlying)
        f["dates"].append(p.chain.as_of.isoformat())
        f["notes"].extend(n for n in p.notes if n not in f["notes"])
    for f in by_file.values():
        f["first_date"], f["last_date"] = min(f["dates"]), max(f["dates"])
        del f["dates"]
    return list(by_file.values())


def stored_chain(conn, header: dict) -> OptionChain:
    """An imported chain as stored, rebuilt into the record the engine takes."""
    from gexhistory.pipeline.chain_prep import expiry_close_ts  # lazy: a backfill loads pandas only for such a chain

    day = dt.date.fromisoformat(header["as_of"])
    a = cs.chain_contracts(conn, header["underlying"], day, header["chain_source"])
    return OptionChain(header["underlying"], day, a["expiration"], expiry_close_ts(a["expiration"]), a["strike"],
                       a["is_call"], a["open_interest"], a["iv"], header["chain_source"],
                       gamma=a["gamma"] if np.isfinite(a["gamma"]).any() else None)


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
