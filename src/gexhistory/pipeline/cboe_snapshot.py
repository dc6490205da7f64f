"""A keyless live snapshot: Cboe's delayed quotes (sources/cboe_delayed.py) -> one chain -> the engine.

- When: the quotes' own timestamp (New York time). Inside a session (open to close) the snapshot is
  that minute; after a session's close, or before the next one's open (weekends, holidays, the night),
  the quotes are the last session's closing ones and the snapshot is that session's close.
- The chain: every contract with an implied volatility: Cboe's own when positive ('f'), else the IV of
  the bid/ask mid by Black-Scholes at the quoted price and the snapshot's time ('p'); a contract with
  neither is left out and counted, as are contracts without open interest, adjusted contracts (a root
  with a digit, e.g. SPY1: a non-standard deliverable, not 100 shares) and already expired ones. Roots
  of one underlying are one chain (SPX and SPXW -> SPX). AM-settled roots (sources/chains/roots.py:
  the standard SPX monthly) expire at the open of their expiration session, so on that day they are
  gone and before it they are timed to the open; an SPX monthly and the SPXW contract of its date are
  two contracts, and roots that settle alike merge (OI added, IV OI-weighted), as chain imports do.
- Stored: the chain in option_chains/option_chain_contracts (chain_source 'cboe_delayed', as_of the
  session: one chain per session, the latest snapshot's), and the snapshot's gex_history and
  gamma_history rows under its minute (data_source 'cboe'). The same quotes again (same timestamp)
  replace their rows, never duplicate them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np

from gexhistory.calendar import ET, Session, format_ts, session_on, sessions_before
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import Conventions, compute_gex_one
from gexhistory.engine.greeks import SECONDS_PER_YEAR
from gexhistory.engine.implied import implied_vol
from gexhistory.errors import BadInput, ProviderError
from gexhistory.pipeline.chain_pack import contract_columns
from gexhistory.pipeline.runs import failure_message
from gexhistory.pipeline.snapshot import SnapshotResult, snapshot_rows
from gexhistory.sources.cboe_delayed import CHAIN_SOURCE, DATA_SOURCE, FORMAT, CboeClient, CboeQuotes, stored_symbol
from gexhistory.sources.chains.roots import am_settled
from gexhistory.store import chains as cs
from gexhistory.store import writes
from gexhistory.store.db import init_schema, open_engine
from gexhistory.words import plural

IV_MAX = 10.0  # 1000%: a larger "IV" is not a decimal volatility


def snapshot_time(stamp: dt.datetime) -> tuple[Session, dt.datetime]:
    """(session, snapshot time) the quotes stamped `stamp` describe (module docstring)."""
    stamp = stamp.astimezone(ET)
    s = session_on(stamp.date())
    if s is not None and s.open <= stamp <= s.close:
        return s, stamp.replace(second=0, microsecond=0)
    if s is None or stamp < s.open:
        before = sessions_before(stamp.date(), 1)
        if not before:
            raise ProviderError(f"cboe: quotes stamped {format_ts(stamp)} precede the calendar")
        s = before[0]
    return s, s.close


def build_chain(q: CboeQuotes, session: Session, at: dt.datetime,
                conv: Conventions) -> tuple[OptionChain, np.ndarray, list[str], int]:
    """The chain the engine takes, each contract's iv_source, notes on what was derived or left out, and
    how many contracts were left out for want of an IV."""
    import pandas as pd  # lazy: the snapshot alone needs it

    from gexhistory.pipeline.chain_prep import build_chains, expiry_close_ts  # lazy: pandas, as imports load it

    notes = []
    adjusted = pd.Series(q.root, dtype=object).str.contains(r"\d", regex=True).to_numpy(dtype=bool)
    am = am_settled(q.root)  # SPX monthlies and the like: gone at the open of their expiration session
    expired = (q.expiry < np.datetime64(session.date, "D")) | (am & (q.expiry == np.datetime64(session.date, "D")))
    no_oi = ~np.isfinite(q.oi) | (q.oi < 0)
    base = ~adjusted & ~expired & ~no_oi
    close = expiry_close_ts(q.expiry, am) if q.expiry.size else np.empty(0)
    t = (close - at.timestamp()) / SECONDS_PER_YEAR
    iv = np.where(q.iv <= IV_MAX, q.iv, np.nan)
    src = np.where(np.isfinite(iv), "f", "").astype(object)
    mid = np.where((q.bid > 0) & (q.ask >= q.bid), (q.bid + q.ask) / 2, np.nan)
    need = base & ~np.isfinite(iv) & np.isfinite(mid) & (t > 0)
    if need.any():
        got = implied_vol(mid[need], np.full(int(need.sum()), q.spot), q.strike[need], t[need], conv.r, conv.q,
                          q.is_call[need])
        iv[need] = got
        src[np.flatnonzero(need)[np.isfinite(got)]] = "p"
    keep = base & np.isfinite(iv)
    no_iv = int((base & ~np.isfinite(iv)).sum())
    for n, what in ((q.malformed, "without an OSI option symbol"), (int(adjusted.sum()), "of adjusted roots "
                    "(non-standard deliverables)"), (int((expired & ~adjusted).sum()), "already expired"),
                    (int((no_oi & ~adjusted & ~expired).sum()), "without open interest"),
                    (no_iv, "without an IV (none quoted, none from the bid/ask mid)")):
        if n:
            notes.append(f"{plural(n, 'contract')} {what} left out")
    derived = int((keep & (src == "p")).sum())
    if derived:
        notes.append(f"{plural(derived, 'IV')} from the bid/ask mid (Cboe quoted none)")
    if not keep.any():
        raise ProviderError(f"cboe: no {q.symbol} contract has open interest and an IV ({'; '.join(notes)})")
    try:  # roots merged and AM-settled contracts kept apart exactly as a chain import does
        [item] = build_chains(path=q.url, fmt=FORMAT, label=CHAIN_SOURCE, underlying=np.full(int(keep.sum()), q.symbol),
                              as_of=np.full(int(keep.sum()), np.datetime64(session.date, "D")),
                              expiry=q.expiry[keep], strike=q.strike[keep], is_call=q.is_call[keep], oi=q.oi[keep],
                              iv=iv[keep], iv_source=src[keep].astype(str), lines=np.flatnonzero(keep) + 1,
                              gamma=q.gamma[keep], group=q.root[keep], notes=notes, am=am[keep])
    except BadInput as exc:  # the same option twice in one answer: Cboe's fault, not the user's
        raise ProviderError(f"cboe: {q.symbol}: {exc}") from None
    return item.chain, np.asarray(item.iv_source).astype(object), item.notes, no_iv


def take_cboe_snapshot(engine, q: CboeQuotes, conv: Conventions | None = None):
    """Compute and store one symbol's snapshot from its quotes; returns the SnapshotResult."""
    conv = conv or Conventions()
    session, at = snapshot_time(q.timestamp)
    chain, iv_source, notes, no_iv = build_chain(q, session, at, conv)
    g = compute_gex_one(chain, q.spot, at, conv)
    rows = snapshot_rows(q.symbol, at, g, data_source=DATA_SOURCE, chain_source=CHAIN_SOURCE)
    header = {"underlying": q.symbol, "as_of": session.date.isoformat(), "chain_source": CHAIN_SOURCE,
              "format": FORMAT, "file": q.url, "file_spot": q.spot, "file_spot_kind": "data.current_price",
              "contracts": len(chain), "notes": json.dumps([f"quotes of {format_ts(q.timestamp)} ET", *notes]),
              "imported_at": format_ts(dt.datetime.now(ET))}
    with engine.begin() as conn:
        writes.lock_symbol(conn, q.symbol)
        cs.replace_chains(conn, [header], *contract_columns([_Stored(chain, CHAIN_SOURCE, iv_source)]))
        replaced = writes.replace_at_timestamp(conn, q.symbol, format_ts(at), rows)
    return SnapshotResult(q.symbol, format_ts(at), q.listed, len(chain), no_iv, g, replaced, notes,
                          data_source=DATA_SOURCE, chain_source=CHAIN_SOURCE, quotes_at=format_ts(q.timestamp))


@dataclass
class _Stored:
    """A snapshot's chain as chain_pack.contract_columns takes it (AM-settled contracts beside a PM
    one of the same strike are stored in its row, as imports store them)."""

    chain: OptionChain
    label: str
    iv_source: np.ndarray


def run_cboe_snapshot(symbols: list[str], db: str | None) -> tuple[list[SnapshotResult], list[tuple[str, str]]]:
    """Take one snapshot per symbol from Cboe's delayed quotes. Returns (results, [(symbol, why it failed)]).
    Every symbol's quotes first, then the writes: an unknown symbol is bad input found before anything
    is written; a symbol whose fetch or computation fails costs the others nothing."""
    client = CboeClient()
    quotes, failed, unknown = [], [], []
    try:
        for symbol in symbols:
            try:
                quotes.append(client.fetch(symbol))
            except BadInput as exc:
                unknown.append(str(exc))
            except Exception as exc:  # noqa: BLE001 - one symbol's outage must not cost the others
                if len(symbols) == 1:
                    raise
                failed.append((stored_symbol(symbol), failure_message(exc)))
    finally:
        client.close()
    if unknown:
        raise BadInput("; ".join(unknown) + ("; nothing was written" if len(symbols) > 1 else ""))
    done = []
    if quotes:
        engine = open_engine(db)
        init_schema(engine)
        try:
            for q in quotes:
                try:
                    done.append(take_cboe_snapshot(engine, q))
                except Exception as exc:  # noqa: BLE001 - as above
                    if len(symbols) == 1:
                        raise
                    failed.append((q.symbol, failure_message(exc)))
        finally:
            engine.dispose()
    return done, failed
