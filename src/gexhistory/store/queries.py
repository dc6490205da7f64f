"""Read-only queries behind the GEX and gamma pages and the JSON API (signal_queries.py: the signals').
Together the only SQL the web layer runs.

Every statement is parameterised (SQLAlchemy Core) and filters on symbol plus a time range, so it
walks the (symbol, timestamp) / (symbol, date) unique indexes. Long ranges are bucketed in SQL
(DENSE_RANK() of the session // d, then AVG), so a chart never receives more rows than it draws; statistics come
back as aggregates (counts, sums), never as raw history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import (
    Engine,
    Float,
    bindparam,
    and_,
    case,
    func,
    inspect,
    select,
)

from gexhistory.store.schema import gamma_daily_summary, gamma_history, gex_history

MAX_POINTS = 1500  # most points one chart series receives
GEX, GAMMA, SUMMARY = gex_history, gamma_history, gamma_daily_summary


@dataclass(frozen=True)
class Window:
    """Inclusive date window of one symbol's history, as SQL bounds for dates and timestamps."""

    symbol: str
    start: dt.date
    end: dt.date

    @property
    def ts_lo(self) -> str:
        return f"{self.start.isoformat()} 00:00:00"

    @property
    def ts_hi(self) -> str:
        return f"{self.end.isoformat()} 23:59:59"

    @property
    def d_lo(self) -> str:
        return self.start.isoformat()

    @property
    def d_hi(self) -> str:
        return self.end.isoformat()


def has_tables(engine: Engine) -> bool:
    return "gamma_daily_summary" in inspect(engine).get_table_names()


def symbols(engine: Engine) -> list[str]:
    """Symbols with at least one stored session (empty when the schema does not exist yet)."""
    if not has_tables(engine):
        return []
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(SUMMARY.c.symbol).distinct().order_by(SUMMARY.c.symbol))]


def date_span(engine: Engine, symbol: str) -> tuple[dt.date, dt.date] | None:
    """First and last stored session of `symbol`, None when it has none."""
    with engine.connect() as conn:
        lo, hi = conn.execute(
            select(func.min(SUMMARY.c.date), func.max(SUMMARY.c.date)).where(SUMMARY.c.symbol == symbol)
        ).one()
    if lo is None:
        return None
    return dt.date.fromisoformat(lo), dt.date.fromisoformat(hi)


def sources(engine: Engine, symbol: str) -> list[dict]:
    """Distinct (data_source, chain_source) of a symbol's sessions, with session counts."""
    q = (select(SUMMARY.c.data_source, SUMMARY.c.chain_source, func.count().label("sessions"))
         .where(SUMMARY.c.symbol == symbol)
         .group_by(SUMMARY.c.data_source, SUMMARY.c.chain_source)
         .order_by(SUMMARY.c.data_source, SUMMARY.c.chain_source))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def _count_snapshots(conn, table, w: Window) -> int:
    return int(conn.execute(
        select(func.count()).select_from(table)
        .where(table.c.symbol == w.symbol, table.c.timestamp >= w.ts_lo, table.c.timestamp <= w.ts_hi)
    ).scalar_one())


def _bucketed(conn, table, w: Window, cols: list[str], max_points: int) -> tuple[list[dict], int]:
    """Rows of `table` in the window; when there are more than `max_points`, averaged in SQL over buckets
    of d whole sessions (DENSE_RANK of the date // d), so a point is never half of one day and half of
    the next.

    Returns (rows, d): d == 0 means the stored snapshots unchanged (plus their regime and sources); d >= 1
    means each row averages d sessions' snapshots, stamped with the bucket's last time.
    """
    n = _count_snapshots(conn, table, w)
    where = and_(table.c.symbol == w.symbol, table.c.timestamp >= w.ts_lo, table.c.timestamp <= w.ts_hi)
    if n <= max_points:
        q = (select(table.c.timestamp, *[table.c[c] for c in cols], table.c.regime,
                    table.c.data_source, table.c.chain_source)
             .where(where).order_by(table.c.timestamp))
        return [dict(r._mapping) for r in conn.execute(q)], 0
    day = func.substr(table.c.timestamp, 1, 10)
    n_days = int(conn.execute(select(func.count(func.distinct(day))).where(where)).scalar_one())
    d = max(1, -(-n_days // max_points))
    rank = func.dense_rank().over(order_by=day) - 1
    inner = select(table.c.timestamp, *[table.c[c] for c in cols], table.c.regime,
                   (rank // d).label("bucket")).where(where).subquery()
    q = (select(func.max(inner.c.timestamp).label("timestamp"),
                *[func.avg(inner.c[c]).label(c) for c in cols],
                func.count().label("snapshots"),
                func.sum(case((inner.c.regime == "POSITIVE", 1), else_=0)).label("positive"),
                func.sum(case((inner.c.regime == "NEGATIVE", 1), else_=0)).label("negative"))
         .group_by(inner.c.bucket).order_by(inner.c.bucket))
    out = []
    for r in conn.execute(q):
        row = dict(r._mapping)
        # A bucket's regime is its majority regime (NEUTRAL without a majority), in the one vocabulary.
        pos, neg, n_b = int(row.pop("positive") or 0), int(row.pop("negative") or 0), int(row["snapshots"])
        row["regime"] = ("POSITIVE" if pos * 2 > n_b else "NEGATIVE" if neg * 2 > n_b else "NEUTRAL")
        out.append(row)
    return out, d


GEX_COLS = ["spot_price", "net_gex", "flip_point", "call_wall", "put_wall"]
GAMMA_COLS = ["spot_price", "net_gex", "flip_point", "call_wall", "put_wall", "implied_volatility",
              "put_call_ratio", "distance_to_flip_pct"]


def gex_series(engine: Engine, w: Window, max_points: int = MAX_POINTS) -> tuple[list[dict], int]:
    """gex_history in the window for the chart and /api/gex/history; (rows, sessions per row or 0)."""
    with engine.connect() as conn:
        rows, k = _bucketed(conn, GEX, w, GEX_COLS, max_points)
        if k == 0:
            # mm_state only has a meaning per snapshot, so only unbucketed rows carry it.
            q = (select(GEX.c.timestamp, GEX.c.mm_state, GEX.c.call_gex, GEX.c.put_gex)
                 .where(GEX.c.symbol == w.symbol, GEX.c.timestamp >= w.ts_lo, GEX.c.timestamp <= w.ts_hi))
            extra = {r.timestamp: r for r in conn.execute(q)}
            for row in rows:
                e = extra[row["timestamp"]]
                row.update(mm_state=e.mm_state, call_gex=e.call_gex, put_gex=e.put_gex)
    for row in rows:
        row["symbol"] = w.symbol
    return rows, k


def gamma_series(engine: Engine, w: Window, max_points: int = MAX_POINTS) -> tuple[list[dict], int]:
    """gamma_history in the window for the /gamma charts and /api/gamma/{symbol}/history."""
    with engine.connect() as conn:
        rows, k = _bucketed(conn, GAMMA, w, GAMMA_COLS, max_points)
    for row in rows:
        row["symbol"] = w.symbol
    return rows, k


def gex_overview(engine: Engine, w: Window) -> dict:
    """Cards of /gex/history: latest snapshot, average net GEX, regime shares, regime changes."""
    where = and_(GEX.c.symbol == w.symbol, GEX.c.timestamp >= w.ts_lo, GEX.c.timestamp <= w.ts_hi)
    agg = select(
        func.count().label("snapshots"),
        func.avg(GEX.c.net_gex).label("avg_net_gex"),
        func.min(GEX.c.net_gex).label("min_net_gex"),
        func.max(GEX.c.net_gex).label("max_net_gex"),
        func.sum(case((GEX.c.regime == "POSITIVE", 1), else_=0)).label("positive"),
        func.sum(case((GEX.c.regime == "NEGATIVE", 1), else_=0)).label("negative"),
        func.sum(case((GEX.c.regime == "NEUTRAL", 1), else_=0)).label("neutral"),
        func.max(GEX.c.timestamp).label("last_ts"),
        func.min(GEX.c.timestamp).label("first_ts"),
    ).where(where)
    with engine.connect() as conn:
        out = dict(conn.execute(agg).one()._mapping)
        latest = None
        if out["last_ts"]:
            latest = conn.execute(
                select(GEX.c.timestamp, GEX.c.net_gex, GEX.c.spot_price, GEX.c.flip_point, GEX.c.call_wall,
                       GEX.c.put_wall, GEX.c.regime, GEX.c.mm_state, GEX.c.data_source, GEX.c.chain_source)
                .where(GEX.c.symbol == w.symbol, GEX.c.timestamp == out["last_ts"])
            ).one()._mapping
    for key in ("positive", "negative", "neutral"):
        out[key] = int(out[key] or 0)
    out["latest"] = dict(latest) if latest else None
    return out


def _changes_subquery(w: Window):
    prev = func.lag(GEX.c.regime).over(order_by=GEX.c.timestamp)
    return (select(GEX.c.timestamp, GEX.c.regime, prev.label("previous_regime"))
            .where(GEX.c.symbol == w.symbol, GEX.c.timestamp >= w.ts_lo, GEX.c.timestamp <= w.ts_hi)
            .subquery())


def _count_changes(conn, w: Window) -> int:
    """Snapshot-to-snapshot regime flips (intraday NEUTRAL/POSITIVE flapping included)."""
    s = _changes_subquery(w)
    return int(conn.execute(
        select(func.count()).select_from(s)
        .where(s.c.previous_regime.is_not(None), s.c.previous_regime != s.c.regime)
    ).scalar_one())


CLOSE_COLS = ("date", "timestamp", "spot_price", "net_gex", "flip_point", "call_wall", "put_wall", "regime")


def _closes_subquery(w: Window):
    """The close snapshot (last stored snapshot) of every session in the window, from gamma_history,
    whose (symbol, date) index finds a session's rows without reading the others."""
    g = GAMMA
    last = (select(func.max(g.c.timestamp).label("ts"))
            .where(g.c.symbol == w.symbol, g.c.date >= w.d_lo, g.c.date <= w.d_hi)
            .group_by(g.c.date).subquery())
    return (select(*[g.c[c] for c in CLOSE_COLS])
            .join_from(g, last, and_(g.c.symbol == w.symbol, g.c.timestamp == last.c.ts)).subquery())


def session_closes(engine: Engine, w: Window) -> list[dict]:
    """One row per stored session of the window, its close snapshot's values, oldest first."""
    c = _closes_subquery(w)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(c).order_by(c.c.date))]


def regime_changes(engine: Engine, w: Window, limit: int | None = 100) -> list[dict]:
    """Regime changes counted at session closes, with the NEUTRAL band as hysteresis, newest first.

    The regime that holds is the last close's that was POSITIVE or NEGATIVE: a NEUTRAL close (|net GEX|
    within 5% of gross, engine/params.NEUTRAL_BAND) leaves it as it was, so one change needs net GEX to
    cross the whole band, from one side to the other, between two closes. Intraday flapping across the
    band's edge, which snapshot-to-snapshot counting reports, does not count.
    """
    c = _closes_subquery(w)
    sided = (select(c, func.lag(c.c.regime).over(order_by=c.c.date).label("previous_regime"))
             .where(c.c.regime != "NEUTRAL").subquery())
    q = (select(sided).where(sided.c.previous_regime.is_not(None), sided.c.previous_regime != sided.c.regime)
         .order_by(sided.c.date.desc()))
    if limit is not None:
        q = q.limit(limit)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    for r in rows:
        r["symbol"] = w.symbol
    return rows


def count_regime_changes(engine: Engine, w: Window) -> dict:
    """{'at_closes': changes as regime_changes counts them, 'snapshot_flips': snapshot-to-snapshot flips}."""
    c = _closes_subquery(w)
    sided = (select(c.c.regime, func.lag(c.c.regime).over(order_by=c.c.date).label("previous_regime"))
             .where(c.c.regime != "NEUTRAL").subquery())
    with engine.connect() as conn:
        at_closes = conn.execute(select(func.count()).select_from(sided).where(
            sided.c.previous_regime.is_not(None), sided.c.previous_regime != sided.c.regime)).scalar_one()
        flips = _count_changes(conn, w)
    return {"at_closes": int(at_closes), "snapshot_flips": flips}


def daily_timeline(engine: Engine, w: Window, limit: int = 60) -> list[dict]:
    """gamma_daily_summary rows of the window, newest first, for the timeline tables."""
    t = SUMMARY
    q = (select(t.c.date, t.c.open_gex, t.c.close_gex, t.c.high_gex, t.c.low_gex, t.c.gex_change,
                t.c.gex_change_pct, t.c.open_flip, t.c.close_flip, t.c.open_price, t.c.close_price,
                t.c.price_change_pct, t.c.avg_iv, t.c.snapshots_count, t.c.price_gex_corr_20d,
                t.c.data_source, t.c.chain_source)
         .where(t.c.symbol == w.symbol, t.c.date >= w.d_lo, t.c.date <= w.d_hi)
         .order_by(t.c.date.desc()).limit(limit))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


# ---- /gamma -----------------------------------------------------------------------------------

def window_chain_sources(engine: Engine, w: Window) -> dict[str, int]:
    """Sessions of the window per chain_source."""
    t = SUMMARY
    q = (select(t.c.chain_source, func.count()).where(t.c.symbol == w.symbol, t.c.date >= w.d_lo, t.c.date <= w.d_hi)
         .group_by(t.c.chain_source))
    with engine.connect() as conn:
        return {src: int(n) for src, n in conn.execute(q)}


def gamma_stats(engine: Engine, w: Window) -> dict:
    """Aggregates of gamma_history in the window, for the /gamma cards."""
    g = GAMMA
    q = select(
        func.count().label("snapshots"),
        func.count(func.distinct(g.c.date)).label("sessions"),
        func.avg(g.c.net_gex).label("avg_net_gex"),
        func.min(g.c.net_gex).label("min_net_gex"),
        func.max(g.c.net_gex).label("max_net_gex"),
        func.avg(g.c.implied_volatility).label("avg_iv"),
        func.min(g.c.implied_volatility).label("min_iv"),
        func.max(g.c.implied_volatility).label("max_iv"),
        func.avg(g.c.put_call_ratio).label("avg_pcr"),
        func.min(g.c.put_call_ratio).label("min_pcr"),
        func.max(g.c.put_call_ratio).label("max_pcr"),
        func.avg(g.c.distance_to_flip_pct).label("avg_distance_to_flip_pct"),
        func.sum(case((g.c.regime == "POSITIVE", 1), else_=0)).label("positive"),
        func.sum(case((g.c.regime == "NEGATIVE", 1), else_=0)).label("negative"),
        func.min(g.c.date).label("first_date"),
        func.max(g.c.date).label("last_date"),
    ).where(g.c.symbol == w.symbol, g.c.date >= w.d_lo, g.c.date <= w.d_hi)
    with engine.connect() as conn:
        out = dict(conn.execute(q).one()._mapping)
    out["positive"] = int(out["positive"] or 0)
    out["negative"] = int(out["negative"] or 0)
    return out


CORR_PAIRS = (("price", "net_gex", "spot_price", "net_gex"),
              ("price", "iv", "spot_price", "implied_volatility"),
              ("net_gex", "iv", "net_gex", "implied_volatility"),
              ("pcr", "iv", "put_call_ratio", "implied_volatility"))


def correlation_sums(engine: Engine, w: Window) -> dict[str, dict]:
    """Per pair, centred sums (n, Sx, Sy, Sxx, Syy, Sxy) over the window's snapshots, for levels and for
    snapshot-to-snapshot changes. Two passes in SQL: the means, then every pair's sums at once, centred on
    those means (bound as parameters) so $1e9 GEX sums keep their precision.
    """
    g = GAMMA
    cols = ("spot_price", "net_gex", "implied_volatility", "put_call_ratio")
    where = and_(g.c.symbol == w.symbol, g.c.date >= w.d_lo, g.c.date <= w.d_hi)
    base = select(*[g.c[c] for c in cols],
                  *[(g.c[c] - func.lag(g.c[c]).over(order_by=g.c.timestamp)).label(f"d_{c}") for c in cols]
                  ).where(where).subquery()
    names = [*cols, *[f"d_{c}" for c in cols]]
    with engine.connect() as conn:
        means = conn.execute(select(*[func.avg(base.c[n]).label(n) for n in names])).one()._mapping
        sums, keys = [], []
        for kind, prefix in (("levels", ""), ("changes", "d_")):
            for a, b, ca, cb in CORR_PAIRS:
                xa, yb = base.c[prefix + ca], base.c[prefix + cb]
                both = and_(xa.is_not(None), yb.is_not(None))
                x = xa - bindparam(None, means[prefix + ca] or 0.0, type_=Float)
                y = yb - bindparam(None, means[prefix + cb] or 0.0, type_=Float)
                sums += [func.sum(case((both, 1), else_=0)), func.sum(case((both, x))), func.sum(case((both, y))),
                         func.sum(case((both, x * x))), func.sum(case((both, y * y))), func.sum(case((both, x * y)))]
                keys.append(f"{kind}:{a}-{b}")
        row = conn.execute(select(*sums)).one()
    out: dict[str, dict] = {}
    for i, key in enumerate(keys):
        n, sx, sy, sxx, syy, sxy = row[6 * i:6 * i + 6]
        out[key] = {"n": int(n or 0), "sx": sx, "sy": sy, "sxx": sxx, "syy": syy, "sxy": sxy}
    return out


# ---- /gex/profile -----------------------------------------------------------------------------------

PROFILE_COLS = ("timestamp", "spot_price", "net_gex", "call_gex", "put_gex", "flip_point", "call_wall", "put_wall",
                "regime", "mm_state", "data_source", "chain_source")


def snapshot_at(engine: Engine, symbol: str, ts: str) -> dict | None:
    """The stored gex_history snapshot of `symbol` at `ts`, else the last one before it on the same day
    (None when that day has none at or before `ts`)."""
    g = GEX
    q = (select(*[g.c[c] for c in PROFILE_COLS])
         .where(g.c.symbol == symbol, g.c.timestamp <= ts, g.c.timestamp >= ts[:10] + " 00:00:00")
         .order_by(g.c.timestamp.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(q).first()
    return dict(row._mapping) if row else None


def latest_timestamp(engine: Engine, symbol: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(func.max(GEX.c.timestamp)).where(GEX.c.symbol == symbol)).scalar()


def close_snapshots(engine: Engine, symbol: str) -> list[dict]:
    """Every session's close snapshot (timestamp, net GEX, regime, chain_source), oldest first: the
    steps of the profile replay."""
    g = GAMMA
    last = (select(func.max(g.c.timestamp).label("ts")).where(g.c.symbol == symbol).group_by(g.c.date).subquery())
    q = (select(g.c.timestamp, g.c.net_gex, g.c.regime, g.c.chain_source)
         .join_from(g, last, and_(g.c.symbol == symbol, g.c.timestamp == last.c.ts)).order_by(g.c.timestamp))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def stored_closes(engine: Engine, symbol: str, start: dt.date, end: dt.date) -> list[tuple]:
    """(timestamp, net_gex, chain_source, data_source) of every gex_history snapshot of `symbol` from
    `start` to `end`, oldest first: `validate --stored` keeps each session's close among them."""
    g = GEX
    q = (select(g.c.timestamp, g.c.net_gex, g.c.chain_source, g.c.data_source)
         .where(g.c.symbol == symbol, g.c.timestamp >= f"{start.isoformat()} 00:00:00",
                g.c.timestamp <= f"{end.isoformat()} 23:59:59")
         .order_by(g.c.timestamp))
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(q)]
