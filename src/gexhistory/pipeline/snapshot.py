"""A live snapshot: the current option chain from Massive's chain snapshot endpoint, through the engine.

`GET /v3/snapshot/options/{underlying}` lists every contract with its details (type, expiry, strike),
greeks, implied volatility, open interest and the underlying's price, 250 per page with `next_url`.
The contracts become an OptionChain (a real chain: chain_source 'massive_snapshot', data_source
'polygon'), compute_gex gives the snapshot at the time the chain arrived, and its rows go to
gex_history and gamma_history under that minute ('YYYY-MM-DD HH:MM:00' ET): a second snapshot within
the same minute replaces the first, never duplicates it. Backfills keep these rows (store/writes.py).

Contracts without implied volatility (no quote) cannot be given a gamma and are left out, and counted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from gexhistory.calendar import ET, TZ_NAME, format_ts, session_on, sessions_before
from gexhistory.engine.chain import OptionChain
from gexhistory.engine.exposure import GEX_UNIT, Conventions, GexSnapshot, compute_gex_one
from gexhistory.errors import BadInput, WorkFailed

CHAIN_SOURCE = "massive_snapshot"
DATA_SOURCE = "polygon"
PAGE_LIMIT = 250  # the endpoint's maximum
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

    def as_dict(self) -> dict:
        g = self.snapshot
        return {"symbol": self.symbol, "timestamp": self.timestamp, "contracts": self.contracts, "used": self.used,
                "without_iv": self.no_iv, "spot_price": g.spot, "net_gex": g.net_gex, "flip_point": g.flip_point,
                "call_wall": g.call_wall, "put_wall": g.put_wall, "regime": g.regime, "replaced": self.replaced,
                "data_source": DATA_SOURCE, "chain_source": CHAIN_SOURCE}


def market_open_at(now: dt.datetime) -> bool:
    """True from a session's open to shortly after its close (ET)."""
    now = now.astimezone(ET)
    s = session_on(now.date())
    return s is not None and s.open <= now <= s.close + AFTER_CLOSE_GRACE


def _expiry_close(day: dt.date) -> float:
    """POSIX seconds of the close of the session an option expiring on `day` stops trading in."""
    s = session_on(day)
    if s is None:  # an expiry date that is a holiday: the contract's last session is the one before
        before = sessions_before(day, 1)
        if not before:
            raise WorkFailed(f"no NYSE session on or before expiry {day}")
        s = before[0]
    return s.close.timestamp()


def chain_from_results(symbol: str, results: list[dict], as_of: dt.date) -> tuple[OptionChain, float, int]:
    """The chain, the underlying's price, and how many contracts had no implied volatility."""
    kinds, expiries, strikes, ois, ivs, gammas, prices = [], [], [], [], [], [], []
    for r in results:
        d = r.get("details") or {}
        kind = str(d.get("contract_type", "")).lower()
        try:
            expiry = dt.date.fromisoformat(str(d.get("expiration_date")))
            strike = float(d["strike_price"])
        except (KeyError, TypeError, ValueError):
            raise WorkFailed(f"massive: a {symbol} chain contract has no usable expiry/strike "
                             f"({str(d.get('ticker', '?'))[:40]})") from None
        if kind not in ("call", "put"):
            raise WorkFailed(f"massive: a {symbol} chain contract has contract_type {kind[:20]!r}")
        kinds.append(kind == "call")
        expiries.append(expiry)
        strikes.append(strike)
        ois.append(_num(r.get("open_interest"), 0.0))
        ivs.append(_num(r.get("implied_volatility"), np.nan))
        gammas.append(_num((r.get("greeks") or {}).get("gamma"), np.nan))
        price = (r.get("underlying_asset") or {}).get("price")
        if price is not None:
            prices.append(_num(price, np.nan))
    prices = [p for p in prices if np.isfinite(p) and p > 0]
    if not results:
        raise WorkFailed(f"massive: the option chain snapshot of {symbol} is empty (no listed options, or an unknown ticker)")
    if not prices:
        raise WorkFailed(f"massive: the {symbol} chain snapshot has no underlying price "
                         "(underlying_asset.price; your plan may not include the underlying's quotes)")
    iv = np.array(ivs, dtype=float)
    ok = np.isfinite(iv) & (iv > 0)
    closes = {d: _expiry_close(d) for d in set(expiries)}
    chain = OptionChain(
        underlying=symbol, as_of=as_of,
        expiry=np.array(expiries, dtype="datetime64[D]")[ok],
        expiry_close=np.array([closes[d] for d in expiries], dtype=float)[ok],
        strike=np.array(strikes, dtype=float)[ok],
        is_call=np.array(kinds, dtype=bool)[ok],
        open_interest=np.array(ois, dtype=float)[ok],
        iv=iv[ok], source=CHAIN_SOURCE, gamma=np.array(gammas, dtype=float)[ok],
    )
    return chain, float(prices[0]), int((~ok).sum())


def _num(value, default: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def snapshot_rows(symbol: str, at: dt.datetime, g: GexSnapshot) -> dict[str, list[dict]]:
    ts = format_ts(at)
    common = {"symbol": symbol, "timestamp": ts, "spot_price": g.spot, "net_gex": g.net_gex,
              "flip_point": g.flip_point, "call_wall": g.call_wall, "put_wall": g.put_wall, "regime": g.regime,
              "flip_found": g.flip_found, "timezone": TZ_NAME, "data_source": DATA_SOURCE,
              "chain_source": CHAIN_SOURCE}
    return {
        "gex_history": [{**common, "mm_state": g.mm_state, "call_gex": g.call_gex, "put_gex": g.put_gex,
                         "gex_unit": GEX_UNIT}],
        "gamma_history": [{**common, "date": at.date().isoformat(), "time_of_day": at.strftime("%H:%M"),
                           "implied_volatility": g.atm_iv, "put_call_ratio": g.put_call_ratio,
                           "distance_to_flip_pct": g.distance_to_flip_pct, "zero_dte_gamma": g.zero_dte_gamma,
                           "gamma_expiring_this_week": g.gamma_expiring_this_week,
                           "gamma_expiring_next_week": g.gamma_expiring_next_week, "max_pain": g.max_pain}],
    }


def snapshot_client(rate: float | None = None):
    """The Massive client (rate limiter, retries, key redaction) for the configured key; no key is bad input."""
    from gexhistory.sources.massive import MassiveSource
    from gexhistory.sources.select import api_key

    key = api_key()
    if not key:
        raise BadInput("snapshot needs a Massive/Polygon API key: set POLYGON_API_KEY or MASSIVE_API_KEY "
                       "(environment or .env)")
    return MassiveSource.from_env(key, rate).client


def fetch_chain(client, symbol: str) -> list[dict]:
    """Every contract of `symbol`'s chain snapshot, all pages."""
    return client.aggregates(f"/v3/snapshot/options/{symbol}", {"limit": str(PAGE_LIMIT)})


def take_snapshot(engine, client, symbol: str, now: dt.datetime, conv: Conventions | None = None) -> SnapshotResult:
    from gexhistory.store import writes

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
        out.notes.append(f"{no_iv} of {len(results)} contracts had no implied volatility and were left out")
    return out


def run_snapshot(symbols: list[str], db: str | None = None, *, now: dt.datetime | None = None,
                 anytime: bool = False, rate: float | None = None) -> tuple[list[SnapshotResult], list[tuple[str, str]]]:
    """Take one snapshot per symbol now. Returns (results, [(symbol, why it failed)]); outside market
    hours nothing is taken unless `anytime`."""
    from gexhistory.pipeline.jobs import failure_message
    from gexhistory.store.db import init_schema, open_engine

    client = snapshot_client(rate)
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
