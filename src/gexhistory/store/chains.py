"""Imported option chains in the database, and the stored prices an import needs for its spots."""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import Connection, and_, delete, inspect, select, text

from gexhistory.store.bulk import insert_many
from gexhistory.store.members import one_of
from gexhistory.store.packed import pack_chains, unpack
from gexhistory.store.schema import gamma_daily_summary, option_chain_contracts, option_chains, price_bars


def replace_chains(conn: Connection, headers: list[dict], chain: np.ndarray, contracts: dict[str, np.ndarray]) -> None:
    """Store many chains at once: `headers` one dict per chain (option_chains' columns), `contracts`
    column-wise for all chains (packed.pack_chains' columns), `chain[i]` the index in `headers` of
    contract i's chain. Earlier imports of the same keys are replaced; only keys that are stored cost a
    delete (one query finds them). Every chain's contracts become one row (store/packed.py)."""
    # pack_chains refuses bad values before anything is deleted
    replace_packed_chains(conn, headers, pack_chains(chain, contracts, len(headers)))


def replace_packed_chains(conn: Connection, headers: list[dict], packed: list[tuple[int, bytes]]) -> None:
    """replace_chains of chains packed already (packed.pack_chains' output, one per header), so that a
    caller can pack them while it computes something else."""
    h, c = option_chains, option_chain_contracts
    wanted = {(r["underlying"], r["as_of"], r["chain_source"]) for r in headers}
    days = sorted({k[1] for k in wanted})
    symbols = sorted({k[0] for k in wanted})
    stored = set()
    for among in one_of(conn, h.c.underlying, symbols):
        q = select(h.c.underlying, h.c.as_of, h.c.chain_source).where(
            among, h.c.as_of >= days[0], h.c.as_of <= days[-1])
        stored.update(tuple(r) for r in conn.execute(q))
    for u, d, src in sorted(stored & wanted):
        conn.execute(delete(c).where(c.c.underlying == u, c.c.as_of == d, c.c.chain_source == src))
        conn.execute(delete(h).where(h.c.underlying == u, h.c.as_of == d, h.c.chain_source == src))
    insert_many(conn, h, headers)
    insert_many(conn, c, [{"underlying": r["underlying"], "as_of": r["as_of"], "chain_source": r["chain_source"],
                           "contract_count": n, "contracts": blob} for r, (n, blob) in zip(headers, packed)])


# Chains stored by live snapshots (`snapshot --source cboe`): a moment of the session, kept for its
# snapshot's profile, not an end-of-day chain a backfill should recompute the whole session from.
SNAPSHOT_CHAIN_SOURCES = ("cboe_delayed",)


def latest_chains(conn: Connection, underlying: str, start: dt.date, end: dt.date) -> dict[dt.date, dict]:
    """Per as-of date in [start, end]: the header of the most recently imported chain file."""
    h = option_chains
    q = select(h).where(h.c.underlying == underlying, h.c.as_of >= start.isoformat(),
                        h.c.as_of <= end.isoformat(), h.c.chain_source.not_in(SNAPSHOT_CHAIN_SOURCES)
                        ).order_by(h.c.as_of, h.c.id)
    out: dict[dt.date, dict] = {}
    for row in conn.execute(q).mappings():
        out[dt.date.fromisoformat(row["as_of"])] = dict(row)  # later ids overwrite earlier ones
    return out


def chain_contracts(conn: Connection, underlying: str, as_of: dt.date, chain_source: str) -> dict[str, np.ndarray]:
    """One stored chain's contracts as packed.unpack gives them (empty arrays when none is stored)."""
    c = option_chain_contracts
    if not contracts_packed(conn):  # an earlier version's database no write command converted yet (read-only serve)
        return _row_contracts(conn, underlying, as_of, chain_source)
    blob = conn.execute(select(c.c.contracts).where(
        c.c.underlying == underlying, c.c.as_of == as_of.isoformat(), c.c.chain_source == chain_source)).scalar()
    return unpack(blob)


def stored_bars_many(conn: Connection, timeframe: str, wanted: set[tuple[str, dt.date]]
                     ) -> dict[tuple[str, dt.date], list[tuple[str, float, float, str]]]:
    """Stored real (non-synthetic) bars of `timeframe` for many (symbol, day) at once: per pair that has
    any, its (timestamp, open, close, data_source) rows ordered by data_source and timestamp. One query
    per members.one_of condition."""
    if not wanted:
        return {}
    t = price_bars
    symbols = sorted({s for s, _ in wanted})
    first, last = min(d for _, d in wanted), max(d for _, d in wanted)
    out: dict[tuple[str, dt.date], list] = {}
    for among in one_of(conn, t.c.symbol, symbols):
        q = select(t.c.symbol, t.c.timestamp, t.c.open, t.c.close, t.c.data_source).where(
            among, t.c.timeframe == timeframe, t.c.data_source != "synthetic",
            t.c.timestamp >= f"{first.isoformat()} 00:00:00", t.c.timestamp <= f"{last.isoformat()} 23:59:59",
        ).order_by(t.c.symbol, t.c.data_source, t.c.timestamp)
        for sym, ts, o, c, src in conn.execute(q):
            key = (sym, dt.date.fromisoformat(ts[:10]))
            if key in wanted:
                out.setdefault(key, []).append((ts, o, c, src))
    return out


def daily_close_of(rows: list | None) -> tuple[float, str] | None:
    """The session's close and its data_source from one pair's stored_bars_many daily rows."""
    return (float(rows[0][2]), rows[0][3]) if rows else None


def minute_bars_of(rows: list | None) -> tuple[list[tuple[str, float, float]], str] | None:
    """(timestamp, open, close) of one pair's stored_bars_many minute rows, of one data_source."""
    if not rows:
        return None
    src = rows[0][3]
    return [(ts, o, c) for ts, o, c, s in rows if s == src], src


def summaries_between_many(conn: Connection, symbols: list[str], start: dt.date, end: dt.date
                           ) -> dict[str, dict[dt.date, tuple[float, float]]]:
    """Per symbol: date -> (close_price, close_gex) of its stored daily summaries in [start, end]; one
    query per members.one_of condition (every symbol a key)."""
    t = gamma_daily_summary
    out: dict[str, dict[dt.date, tuple[float, float]]] = {s: {} for s in symbols}
    for among in one_of(conn, t.c.symbol, symbols):
        q = select(t.c.symbol, t.c.date, t.c.close_price, t.c.close_gex).where(
            and_(among, t.c.date >= start.isoformat(),
                 t.c.date <= end.isoformat()))
        for s, d, p, g in conn.execute(q):
            out[s][dt.date.fromisoformat(d)] = (p, g)
    return out


# ---- databases written before contracts were packed ------------------------------------------------

# Fixed statements (no value in them): the old table's columns in the order _repack reads them.
_READ_ROWS = ('SELECT underlying, as_of, chain_source, expiration, strike, "right", open_interest, iv, iv_source, '
              "gamma, expires_at_open, open_interest_at_open, iv_at_open FROM option_chain_contracts_rows "
              "ORDER BY underlying, as_of, chain_source")
_READ_CHAIN_ROWS = text(
    'SELECT expiration, strike, "right", open_interest, iv, iv_source, gamma, expires_at_open, open_interest_at_open, '
    'iv_at_open FROM option_chain_contracts WHERE underlying = :u AND as_of = :a AND chain_source = :s '
    'ORDER BY expiration, strike, "right" DESC')  # packed order: puts ('P') before calls
REPACK_BATCH = 200_000  # contracts read before the complete chains among them are packed and written


def repack_row_contracts(conn: Connection) -> int:
    """Move a database's option_chain_contracts from one row per contract (as earlier versions wrote it) to
    one packed row per chain, inside the caller's transaction: the old table is renamed, read in key
    order and dropped. Returns how many chains were moved."""
    conn.exec_driver_sql("ALTER TABLE option_chain_contracts RENAME TO option_chain_contracts_rows")
    if conn.dialect.name == "postgresql":  # the primary key's name would clash with the new table's
        conn.exec_driver_sql("ALTER TABLE option_chain_contracts_rows RENAME CONSTRAINT option_chain_contracts_pkey "
                             "TO option_chain_contracts_rows_pkey")
    option_chain_contracts.create(conn)
    result = conn.exec_driver_sql(_READ_ROWS)
    moved, pending = 0, []
    while batch := result.fetchmany(REPACK_BATCH):
        pending += batch
        cut = len(pending)  # the last chain read may go on in the next batch: it waits
        while cut > 0 and tuple(pending[cut - 1][:3]) == tuple(pending[-1][:3]):
            cut -= 1
        moved += _repack(conn, pending[:cut])
        pending = pending[cut:]
    moved += _repack(conn, pending)
    conn.exec_driver_sql("DROP TABLE option_chain_contracts_rows")
    return moved


def _repack(conn: Connection, rows: list) -> int:
    if not rows:
        return 0
    cols = list(zip(*rows))
    keys = list(zip(cols[0], cols[1], cols[2]))
    new = np.array([True] + [keys[i] != keys[i - 1] for i in range(1, len(keys))])
    chain, first = np.cumsum(new) - 1, np.flatnonzero(new)
    nan_if_none = lambda col: np.array([np.nan if v is None else v for v in col], dtype=float)  # noqa: E731
    contracts = {
        "expiration": np.array(cols[3], dtype="datetime64[D]"), "strike": np.array(cols[4], dtype=float),
        "is_call": np.array(cols[5]) == "C", "open_interest": np.array(cols[6], dtype=float),
        "iv": np.array(cols[7], dtype=float), "iv_source": np.array(cols[8], dtype=str),
        "gamma": nan_if_none(cols[9]), "expires_at_open": np.array([bool(v) for v in cols[10]]),
        "open_interest_at_open": nan_if_none(cols[11]), "iv_at_open": nan_if_none(cols[12]),
    }
    packed = pack_chains(chain, contracts, len(first))
    insert_many(conn, option_chain_contracts, [
        {"underlying": keys[i][0], "as_of": keys[i][1], "chain_source": keys[i][2], "contract_count": n,
         "contracts": blob} for i, (n, blob) in zip(first, packed)])
    return len(first)


def contracts_packed(bind) -> bool:
    """Whether option_chain_contracts holds one packed row per chain, not a row per contract as earlier
    versions wrote it. A yes is kept with a Connection's database connection (a packed table stays
    packed); a no is asked again, as `init` may convert the database while a read-only server runs."""
    info = bind.info if isinstance(bind, Connection) else {}
    if not info.get("gexhistory_contracts_packed"):
        info["gexhistory_contracts_packed"] = "contracts" in {
            col["name"] for col in inspect(bind).get_columns(option_chain_contracts.name)}
    return info["gexhistory_contracts_packed"]


def _row_contracts(conn: Connection, underlying: str, as_of: dt.date, chain_source: str) -> dict[str, np.ndarray]:
    """chain_contracts of a table with a row per contract, read without converting it."""
    got = conn.execute(_READ_CHAIN_ROWS, {"u": underlying, "a": as_of.isoformat(), "s": chain_source}).all()
    cols = list(zip(*got)) if got else [()] * 10
    nan_if_none = lambda col: np.array([np.nan if v is None else v for v in col], dtype=float)  # noqa: E731
    return {
        "expiration": np.array(cols[0], dtype="datetime64[D]"), "strike": np.array(cols[1], dtype=float),
        "is_call": np.array(cols[2], dtype=object) == "C", "open_interest": np.array(cols[3], dtype=float),
        "iv": np.array(cols[4], dtype=float), "iv_source": np.array(cols[5], dtype=object),
        "gamma": nan_if_none(cols[6]), "at_open": np.array([bool(v) for v in cols[7]], dtype=bool),
        "oi_at_open": nan_if_none(cols[8]), "iv_at_open": nan_if_none(cols[9]),
    }


def chain_dates(conn: Connection, underlying: str, chain_source: str, start: dt.date, end: dt.date) -> set[dt.date]:
    """The as-of dates in [start, end] with a stored chain of `underlying` from `chain_source` (none when
    the database has no chains table yet)."""
    if "option_chains" not in inspect(conn).get_table_names():
        return set()
    h = option_chains
    q = select(h.c.as_of).where(h.c.underlying == underlying, h.c.chain_source == chain_source,
                                h.c.as_of >= start.isoformat(), h.c.as_of <= end.isoformat())
    return {dt.date.fromisoformat(d) for d in conn.execute(q).scalars()}
