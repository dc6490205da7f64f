"""`gexhistory import-oi`: each session's real open interest from Massive -> the GEX engine -> the
session tables, for sessions no chain file covers.

Massive's `/options/v1/open-interest` (sources/massive_oi.py) gives every contract's open interest as
OPRA reported it for a past session, but no implied vol and no price. So, per session D of the window:
- the contracts: every listed root of the symbol (SPX: SPX and SPXW) with open interest at the end of
  the session before D, the figure published on D's morning (the spec's rule for chain files); those
  expired by D are left out, as are AM-settled ones expiring on D (gone at its open);
- the implied vols: the chain model's surface (engine/surface.py) from the underlying's real daily
  closes up to the session before D, the same surface a modelled chain is priced on. They are stored
  with iv_source 'm' (modelled), and the rows' chain_source is 'massive_oi+model_iv': real positions,
  modelled vols;
- the spot: the underlying's real daily bars from Massive (an index through its I: ticker), stored in
  price_bars (data_source 'polygon') before the sessions are computed, so that the rows say where
  their price came from; with stored real minute bars of the session (a Massive backfill's), all four
  snapshots are written, else the close's (pipeline/chain_store.py).

The window is worked BATCH_SESSIONS sessions at a time: fetched and checked, then one transaction stores
their chains and replaces their rows, as a chain import does. A failure (the network, the plan) costs
the open batch only, and a rerun skips the sessions imported already (`force` fetches them again), so it
resumes where the failure stopped. Sessions Massive has no open interest for (before the plan's
history) are left as they were, and said.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from gexhistory.calendar import last_completed_session, sessions_before, sessions_between
from gexhistory.config import LISTED, LISTED_RULE
from gexhistory.engine.params import Conventions, ModelParams
from gexhistory.engine.surface import atm_level_at_close, contract_ivs
from gexhistory.errors import BadInput, ProviderError, WorkFailed
from gexhistory.pipeline.import_chains import ImportResult
from gexhistory.runtime import engine_threads
from gexhistory.sources import massive_oi
from gexhistory.sources.chains.roots import am_settled
from gexhistory.sources.select import api_key
from gexhistory.words import plural

if TYPE_CHECKING:
    from gexhistory.pipeline.runs import ProgressFn

FORMAT = "massive_oi"
CHAIN_SOURCE = "massive_oi+model_iv"
INDEXES = ("SPX", "NDX", "RUT", "VIX", "XSP", "DJX")  # bars under Massive's I: ticker
RV_SESSIONS = 25  # daily closes before the window: the 20 returns of the first session's vol, and the session before
FETCH = "fetching open interest"  # progress label
BATCH_SESSIONS = 21  # sessions fetched, then stored in one transaction: about a month


def bar_ticker(symbol: str) -> str:
    """Massive's ticker of the underlying's bars."""
    return f"I:{symbol}" if symbol in INDEXES else symbol


def import_open_interest(symbol: str, start: dt.date, end: dt.date, *, db: str | None = None,
                         roots: tuple[str, ...] | None = None, conv: Conventions | None = None,
                         rate: float | None = None, force: bool = False,
                         progress: ProgressFn | None = None) -> ImportResult:
    """Store each session's chain from Massive's open interest and recompute its rows (module docstring).
    `roots`: the OCC roots to read (default: massive_oi.roots_of(symbol)); `rate`: requests per minute
    (default MASSIVE_RATE_PER_MIN, else the free plan's 5); `force`: fetch sessions imported already too."""
    t0 = time.perf_counter()
    report = progress or (lambda *_: None)
    conv = conv or Conventions()
    symbol = symbol.strip().upper()
    if symbol.startswith("I:"):  # the options' underlying is stored as SPX; only its bars are I:SPX
        raise BadInput(f"give the index as its options' underlying, {symbol[2:]}, not {symbol} (its bars are read "
                       f"from {symbol})")
    if not LISTED.match(symbol):
        raise BadInput(f"symbol {symbol!r} does not look like a listed ticker ({LISTED_RULE})")
    roots = tuple(r.strip().upper() for r in (roots or massive_oi.roots_of(symbol)))
    if not roots or not all(r and r.isalnum() for r in roots):
        raise BadInput(f"--roots must be OCC roots separated by commas (e.g. SPX,SPXW), got {','.join(roots)!r}")
    last = last_completed_session().date
    sessions = sessions_between(start, min(end, last)) if start <= last else []
    if not sessions:
        raise BadInput(f"no completed NYSE session from {start} to {end}")
    key = api_key()
    if not key:
        raise BadInput("import-oi needs a Massive/Polygon API key with options data: set POLYGON_API_KEY or "
                       "MASSIVE_API_KEY (environment or .env)")
    threads = engine_threads()
    done = set() if force else _imported(db, symbol, sessions)
    todo = [s for s in sessions if s.date not in done]
    res = ImportResult(0, [], [], {}, 0.0)
    if done:
        res.notes.append(f"{plural(len(done), 'session')} imported already: skipped (--force fetches them again)")
    if not todo:
        res.notes.insert(0, f"nothing to do: all {plural(len(sessions), 'session')} of {symbol} in the window were "
                            f"imported already")
        res.elapsed = time.perf_counter() - t0
        return res
    from gexhistory.pipeline.chain_store import store_sessions  # lazy: SQLAlchemy
    from gexhistory.pipeline.chain_spill import HeldChains, hold_contracts  # lazy: the importer's modules
    from gexhistory.sources.massive import MassiveSource  # lazy: httpx, for this command only

    source = MassiveSource.from_env(key, rate)
    params = {"conventions": conv.as_dict(), "model_iv": ModelParams().as_dict(), "roots": list(roots),
              "endpoint": massive_oi.PATH}
    empty, left_out, made = [], Counter(), _Made()
    try:
        before = sessions_before(todo[0].date, RV_SESSIONS)
        bars = source.daily_bars(bar_ticker(symbol), (before or todo)[0].date, todo[-1].date)
        _store_bars(bars, symbol, db)
        report(FETCH, 0, len(todo))
        for lo in range(0, len(todo), BATCH_SESSIONS):  # each batch committed: a failure costs the open one
            batch = todo[lo:lo + BATCH_SESSIONS]
            holding = HeldChains(hold_contracts())  # as in import-chains: past GEXHISTORY_IMPORT_HOLD_CONTRACTS, on disk
            try:
                empty += _chains(source.client, symbol, roots, batch, bars, holding, left_out,
                                 lambda k: report(FETCH, lo + k, len(todo)))
                if holding.items:
                    run_id, sessions_out, totals = store_sessions(
                        holding.items, db=db, conv=conv, threads=threads, progress=progress, command="import-oi",
                        source="massive open interest",
                        params={**params, "start": batch[0].date.isoformat(), "end": batch[-1].date.isoformat()})
                    made.add(holding.items, run_id, sessions_out, totals)
            finally:
                holding.close()
    finally:
        source.client.close()
    if not made.chains:
        raise WorkFailed(f"massive: no open interest for {symbol} ({', '.join(roots)}) in {todo[0].date}.."
                         f"{todo[-1].date}: the plan's history does not reach it, or it is not published yet")
    notes = _notes(roots, left_out)
    res.run_id, res.sessions, res.totals = made.run_id, made.sessions, made.totals
    res.files = [{"file": f"massive {massive_oi.PATH} {symbol}", "format": FORMAT, "chain_source": CHAIN_SOURCE,
                  "chains": made.chains, "contracts": made.contracts, "underlyings": [symbol],
                  "first_date": made.first.isoformat(), "last_date": made.last.isoformat(), "notes": notes}]
    if empty:
        res.notes.append(massive_oi.note_empty(empty))
    res.elapsed = time.perf_counter() - t0
    return res


class _Made:
    """What the batches of one command stored, summed (the ImportResult's file line, sessions and totals)."""

    def __init__(self) -> None:
        self.chains = self.contracts = self.run_id = 0
        self.first = self.last = None
        self.sessions: list[dict] = []
        self.totals: dict[str, dict[str, int]] = {}

    def add(self, items: list, run_id: int, sessions_out: list[dict], totals: dict) -> None:
        self.chains += len(items)
        self.contracts += sum(len(p.chain) for p in items)
        days = [p.chain.as_of for p in items]
        self.first = min(days) if self.first is None else min(self.first, *days)
        self.last = max(days) if self.last is None else max(self.last, *days)
        self.run_id = run_id  # the last batch's run
        self.sessions += sessions_out
        for table, counts in totals.items():
            mine = self.totals.setdefault(table, {k: 0 for k in counts})
            for k, n in counts.items():
                mine[k] += n


def _imported(db: str | None, symbol: str, sessions) -> set[dt.date]:
    """The sessions of the window whose chain import-oi stored already."""
    from gexhistory.store.chains import chain_dates
    from gexhistory.store.db import open_engine

    engine = open_engine(db)
    try:
        with engine.connect() as conn:
            return chain_dates(conn, symbol, CHAIN_SOURCE, sessions[0].date, sessions[-1].date)
    finally:
        engine.dispose()


def _notes(roots: tuple[str, ...], left_out: Counter) -> list[str]:
    notes = [f"open interest at the close of the session before each one (published that morning): roots "
             f"{', '.join(roots)}", "implied vols from the chain model's surface (iv_source m)"]
    return notes + [f"{plural(n, 'contract')} {why} left out (over all sessions)" for why, n in left_out.items() if n]


def _chains(client, symbol: str, roots: tuple[str, ...], sessions, bars, holding, left_out: Counter,
            fetched) -> list[dt.date]:
    """Each session's ImportedChain into `holding` (chain_spill.HeldChains), its notes its own counts of
    what was left out, also added to `left_out`; `fetched(k)` after k sessions. Returns the sessions
    without open interest."""
    from gexhistory.pipeline.chain_prep import build_chains  # lazy: pandas, as imports load it

    p = ModelParams()
    row = bars.index_of()
    level = atm_level_at_close(np.asarray(bars.close, dtype=float), p)
    empty = []
    for k, s in enumerate(sessions):
        prior = sessions_before(s.date, 1)
        if not prior or prior[0].date not in row or s.date not in row:
            missing = prior[0].date if prior and prior[0].date not in row else s.date
            raise WorkFailed(f"massive: no daily bar of {bar_ticker(symbol)} for {missing}: the session's vol "
                             f"and price cannot be known")
        i = row[prior[0].date]
        got = [massive_oi.fetch(client, r, prior[0].date) for r in roots]
        fetched(k + 1)
        mine = Counter()
        item = _chain(symbol, s.date, got, float(level[i]), float(bars.close[i]), p, build_chains, mine)
        left_out.update(mine)
        if item is None:
            empty.append(s.date)
        else:
            item.notes = _notes(roots, mine)
            holding.add([item])
    return empty


def _chain(symbol, day: dt.date, got, level: float, spot: float, p: ModelParams, build_chains, left_out: Counter):
    """One session's ImportedChain from its roots' open interest, priced on the modelled surface (None
    when no contract is left to hold gamma); what it leaves out is counted into `left_out`."""
    if not any(len(g) for g in got):
        return None
    root = np.concatenate([np.full(len(g), g.root, dtype=object) for g in got])
    expiry = np.concatenate([g.expiry for g in got])
    strike = np.concatenate([g.strike for g in got])
    is_call = np.concatenate([g.is_call for g in got])
    oi = np.concatenate([g.oi for g in got])
    d = np.datetime64(day, "D")
    am = am_settled(root)
    gone = am & (expiry == d)  # settled at the session's open: no gamma at any of its snapshots
    live = (expiry >= d) & ~gone & (oi > 0)
    left_out["already expired"] += int((expiry < d).sum())
    left_out["AM-settled, expired at the session's open,"] += int((gone & (oi > 0)).sum())
    left_out["with zero OI (no gamma)"] += int(((expiry >= d) & ~gone & (oi == 0)).sum())
    if not live.any():
        return None
    n = int(live.sum())
    dte = (expiry[live] - d).astype(float)
    iv = contract_ivs(p, level, spot, dte, strike[live])
    try:
        [item] = build_chains(path=f"massive {massive_oi.PATH} {symbol}", fmt=FORMAT, label=CHAIN_SOURCE,
                              underlying=np.full(n, symbol, dtype=object), as_of=np.full(n, d), expiry=expiry[live],
                              strike=strike[live], is_call=is_call[live], oi=oi[live], iv=iv,
                              iv_source=np.full(n, "m"), lines=np.flatnonzero(live) + 1, group=root[live], am=am[live])
    except BadInput as exc:  # the same contract twice in one answer: Massive's fault, not the user's
        raise ProviderError(f"massive: {symbol} {day}: {exc}") from None
    return item


def _store_bars(bars, symbol: str, db: str | None) -> None:
    """The underlying's daily bars into price_bars under the stored symbol (SPX, not I:SPX), so that the
    sessions are priced from them (data_source 'polygon'); an upsert, so a rerun changes nothing."""
    from gexhistory.pipeline.bar_cache import daily_rows
    from gexhistory.store.bars import upsert_bars
    from gexhistory.store.db import init_schema, open_engine

    engine = open_engine(db)
    try:
        init_schema(engine)
        with engine.begin() as conn:
            upsert_bars(conn, daily_rows(bars, symbol))
    finally:
        engine.dispose()
