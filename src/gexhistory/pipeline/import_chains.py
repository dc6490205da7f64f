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

A later backfill reuses the stored chains (`chain_store.chain_lookup`), so `backfill --force`
recomputes those sessions from the imported chain, never silently from the modelled one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gexhistory.config import LISTED, LISTED_RULE, database_url
from gexhistory.engine.params import Conventions
from gexhistory.errors import BadInput
from gexhistory.pipeline import parallel
from gexhistory.runtime import engine_threads, preload
from gexhistory.words import plural

if TYPE_CHECKING:
    from gexhistory.pipeline.runs import ProgressFn


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


READ = "reading chain files"  # progress label


def parse_files(files: list[str], *, oi_file: str | None = None, volume_as_oi: bool = False,
                underlying: str | None = None, jobs: int = 1, cluster: str | None = None,
                progress: ProgressFn | None = None):
    """Parse and validate every file (nothing written); BadInput on the first bad file, in the order
    given. With `jobs` > 1 the files are read by that many local worker processes, with `cluster` (a
    Dask scheduler address) by the cluster's workers, which must see the files at the same paths.
    `progress(READ, files read, files)` follows them."""
    from gexhistory.pipeline.chain_prep import read_chain_file  # lazy: pyarrow, only when files are read
    from gexhistory.pipeline.chain_spill import HeldChains, hold_contracts
    from gexhistory.pipeline.chain_union import union_split_files

    if not files:
        raise BadInput("give at least one chain file")
    if oi_file and volume_as_oi:
        raise BadInput("give either --oi-file or --volume-as-oi, not both")
    if underlying is not None and not LISTED.match(underlying.upper()):
        raise BadInput(f"--underlying {underlying!r} does not look like a listed ticker ({LISTED_RULE})")
    if not isinstance(jobs, int) or not 1 <= jobs <= 64:
        raise BadInput(f"--jobs must be between 1 and 64, got {jobs}")
    address = parallel.cluster_address(cluster)
    options = {"oi_file": oi_file, "volume_as_oi": volume_as_oi, "underlying": underlying}
    report = progress or (lambda *_: None)
    report(READ, 0, len(files))
    holding = HeldChains(hold_contracts())
    try:
        if address or (jobs > 1 and len(files) > 1):
            pool = parallel.cluster_pool(address) if address else parallel.local_pool(min(jobs, len(files)))
            try:
                futures = [pool.submit(read_chain_file, f, **options) for f in files]
                for k, f in enumerate(futures, 1):  # in the order given: the first bad file is the one reported
                    holding.add(parallel.result_of(f))
                    report(READ, k, len(files))
            except BaseException:
                pool.close(cancel=True)
                raise
            pool.close()
        else:
            for k, f in enumerate(files, 1):
                holding.add(read_chain_file(f, **options))
                report(READ, k, len(files))
        parsed = holding.items
        if (oi_file or volume_as_oi) and not any(p.fmt == "optionsdx" for p in parsed):
            raise BadInput("--oi-file and --volume-as-oi apply to OptionsDX files, and none was given")
        parsed = holding.united(union_split_files)  # quotedata pieces of one chain become that chain
    except BaseException:
        holding.close()
        raise
    return sorted(_later_files_win(parsed), key=lambda p: (p.chain.underlying, p.chain.as_of))


def _later_files_win(parsed: list) -> list:
    """One chain per (underlying, date): the same underlying and date in two files of one import is the
    later file's, as it would be in two imports. The later file's notes say how many chains of which
    earlier file it replaced, so that no file's chains vanish unsaid."""
    last: dict = {}
    replaced: Counter = Counter()  # (earlier file, later file) -> chains
    for p in parsed:
        key = (p.chain.underlying, p.chain.as_of)
        if key in last:
            replaced[(str(last[key].file), str(p.file))] += 1
        last[key] = p
    if not replaced:
        return list(last.values())
    notes: dict[str, list[str]] = {}
    for (earlier, later), n in replaced.items():
        notes.setdefault(later, []).append(f"{plural(n, 'chain')} replaced the same underlying and date read from "
                                           f"{earlier} (the later file wins)")
    renewed: dict[tuple, list[str]] = {}  # notes lists are shared between chains: one new list per list and file
    for p in last.values():
        extra = notes.get(str(p.file))
        if extra:
            p.notes = renewed.setdefault((id(p.notes), str(p.file)), [*p.notes, *extra])
    return list(last.values())


def _driver(db: str | None) -> tuple[str, ...]:
    """The database driver's modules, to preload with the store: psycopg and SQLAlchemy's dialect for it
    take 0.08 s to import. A bad --db is reported where it always was, when the store opens it."""
    try:
        url = database_url(db)
    except BadInput:
        return ()
    return ("sqlalchemy.dialects.postgresql.psycopg",) if url.startswith("postgresql") else ()


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
    threads = engine_threads()  # a bad GEXHISTORY_ENGINE_THREADS is bad input before any file is read
    # SQLAlchemy and the store load on a thread while this one reads the files (Arrow's C++ leaves the
    # GIL). Not when worker processes read them: a worker forked while that thread held an import lock
    # would wait for it forever.
    storing = preload("gexhistory.pipeline.chain_store", *_driver(db)) if jobs == 1 or len(files) < 2 else None
    try:
        items = parse_files(files, oi_file=oi_file, volume_as_oi=volume_as_oi, underlying=underlying, jobs=jobs,
                            cluster=cluster, progress=progress)
    except BaseException:
        if storing is not None:
            storing(quiet=True)  # an import left running would race the interpreter's exit; the file's error is the news
        raise
    if storing is not None:
        storing()
    from gexhistory.pipeline.chain_store import store_sessions  # loaded already when preloaded
    params = {"conventions": conv.as_dict(), "files": list(files), "oi_file": oi_file, "volume_as_oi": volume_as_oi}
    try:
        run_id, sessions_out, totals = store_sessions(items, db=db, conv=conv, threads=threads, params=params,
                                                      progress=progress)
    finally:
        for spill in {id(p.spill): p.spill for p in items if hasattr(p, "spill")}.values():
            spill.close()
    res = ImportResult(run_id, _file_summary(items), sessions_out, totals, time.perf_counter() - t0)
    if any(s["snapshots"] == 1 for s in sessions_out):
        res.notes.append("sessions without stored minute bars got only their end-of-day snapshot (the only "
                         "one whose price the file knows)")
    return res


def _file_summary(items) -> list[dict]:
    by_file: dict[str, dict] = {}
    for p in items:
        f = by_file.setdefault(str(p.file), {"file": str(p.file), "format": p.fmt, "chain_source": p.label,
                                             "chains": 0, "contracts": 0, "underlyings": [], "dates": [],
                                             "notes": []})
        f["chains"] += 1
        f["contracts"] += len(p.chain)
        seen = f.setdefault("_seen", set())
        if p.chain.underlying not in seen:  # a list test per chain is quadratic in a market-wide file
            seen.add(p.chain.underlying)
            f["underlyings"].append(p.chain.underlying)
        f["dates"].append(p.chain.as_of.isoformat())
        f["notes"].extend(n for n in p.notes if n not in f["notes"])
    for f in by_file.values():
        f["first_date"], f["last_date"] = min(f["dates"]), max(f["dates"])
        del f["dates"], f["_seen"]
    return list(by_file.values())

