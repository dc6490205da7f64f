"""A live snapshot: the current option chain from Massive's chain snapshot endpoint, through the engine.

sources/massive_chain.py fetches and parses the chain (a real chain: chain_source 'massive_snapshot',
data_source 'polygon'; contracts without implied volatility left out, and counted); compute_gex gives
the snapshot at the time the chain arrived, and its rows go to gex_history and gamma_history under that
minute ('YYYY-MM-DD HH:MM:00' ET): a second snapshot within the same minute replaces the first, never
duplicates it. Backfills keep these rows (store/writes.py).

`--source cboe` takes the chain from Cboe's delayed quotes instead, which need no key
(pipeline/cboe_snapshot.py, which shares SnapshotResult and the row shape defined here).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from gexhistory.calendar import ET, TZ_NAME, format_ts, session_on
from gexhistory.engine.exposure import GEX_UNIT, Conventions, GexSnapshot, compute_gex_one
from gexhistory.errors import BadInput
from gexhistory.pipeline.options import check_rate
from gexhistory.pipeline.runs import failure_message
from gexhistory.sources.massive_chain import CHAIN_SOURCE, DATA_SOURCE, chain_client, chain_from_results, fetch_chain
from gexhistory.store import writes
from gexhistory.store.db import init_schema, open_engine
from gexhistory.words import plural

AFTER_CLOSE_GRACE = dt.timedelta(minutes=15)  # a 16:00 job that starts a little late still counts


@dataclass
class SnapshotResult:
    symbol: str
    timestamp: str
    contracts: int  # contracts the endpoint listed
    used: int  # contracts in the chain given to the engine
    no_iv: int  # left out: no implied volatility
    snapshot: GexSnapshot
    replaced: int = 0  # rows of an earlier snapshot in the same minute that this one replaced
    notes: list[str] = field(default_factory=list)
    data_source: str = DATA_SOURCE
    chain_source: str = CHAIN_SOURCE
    quotes_at: str | None = None  # the time the quotes were stamped with, when the source stamps them

    def as_dict(self) -> dict:
        g = self.snapshot
        return {"symbol": self.symbol, "timestamp": self.timestamp, "contracts": self.contracts, "used": self.used,
                "without_iv": self.no_iv, "spot_price": g.spot, "net_gex": g.net_gex, "flip_point": g.flip_point,
                "call_wall": g.call_wall, "put_wall": g.put_wall, "regime": g.regime, "replaced": self.replaced,
                "data_source": self.data_source, "chain_source": self.chain_source, "quotes_at": self.quotes_at,
                "notes": self.notes}


def market_open_at(now: dt.datetime) -> bool:
    """True from a session's open to shortly after its close (ET)."""
    now = now.astimezone(ET)
    s = session_on(now.date())
    return s is not None and s.open <= now <= s.close + AFTER_CLOSE_GRACE


def snapshot_rows(symbol: str, at: dt.datetime, g: GexSnapshot, *, data_source: str = DATA_SOURCE,
                  chain_source: str = CHAIN_SOURCE) -> dict[str, list[dict]]:
    ts = format_ts(at)
    common = {"symbol": symbol, "timestamp": ts, "spot_price": g.spot, "net_gex": g.net_gex,
              "flip_point": g.flip_point, "call_wall": g.call_wall, "put_wall": g.put_wall, "regime": g.regime,
              "flip_found": g.flip_found, "timezone": TZ_NAME, "data_source": data_source,
              "chain_source": chain_source}
    return {
        "gex_history": [{**common, "mm_state": g.mm_state, "call_gex": g.call_gex, "put_gex": g.put_gex,
                         "gex_unit": GEX_UNIT}],
        "gamma_history": [{**common, "date": at.date().isoformat(), "time_of_day": at.strftime("%H:%M"),
                           "implied_volatility": g.atm_iv, "put_call_ratio": g.put_call_ratio,
                           "distance_to_flip_pct": g.distance_to_flip_pct, "zero_dte_gamma": g.zero_dte_gamma,
                           "gamma_expiring_this_week": g.gamma_expiring_this_week,
                           "gamma_expiring_next_week": g.gamma_expiring_next_week, "max_pain": g.max_pain}],
    }


def take_snapshot(engine, client, symbol: str, now: dt.datetime, conv: Conventions | None = None) -> SnapshotResult:
    results = fetch_chain(client, symbol)
    at = now.astimezone(ET).replace(second=0, microsecond=0)
    chain, spot, no_iv = chain_from_results(symbol, results, at.date())
    g = compute_gex_one(chain, spot, at, conv or Conventions())
    rows = snapshot_rows(symbol, at, g)
    with engine.begin() as conn:
        writes.lock_symbol(conn, symbol)
        replaced = writes.replace_at_timestamp(conn, symbol, format_ts(at), rows)
    out = SnapshotResult(symbol, format_ts(at), len(results), len(chain), no_iv, g, replaced)
    if no_iv:
        out.notes.append(f"{no_iv:,} of {plural(len(results), 'contract')} had no implied volatility and "
                         f"{'was' if no_iv == 1 else 'were'} left out")
    return out


def run_snapshot(symbols: list[str], db: str | None = None, *, now: dt.datetime | None = None,
                 anytime: bool = False, rate: float | None = None) -> tuple[list[SnapshotResult], list[tuple[str, str]]]:
    """Take one snapshot per symbol now. Returns (results, [(symbol, why it failed)]); outside market
    hours nothing is taken unless `anytime`."""
    check_rate(rate)
    client = chain_client(rate)
    now = (now or dt.datetime.now(ET)).astimezone(ET)
    if not anytime and not market_open_at(now):
        return [], []
    engine = open_engine(db)
    init_schema(engine)
    done, failed = [], []
    try:
        for symbol in symbols:
            try:
                done.append(take_snapshot(engine, client, symbol, now))
            except BadInput:
                raise
            except Exception as exc:  # one symbol's outage must not cost the others their snapshot
                if len(symbols) == 1:
                    raise
                failed.append((symbol, failure_message(exc)))
    finally:
        client.close()
        engine.dispose()
    return done, failed
