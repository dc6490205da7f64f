"""Read-only queries over regime_signals behind /psychology/performance and /probability (and their API).

Same rules as queries.py: parameterised SQLAlchemy Core, filtered on symbol, aggregated in SQL.
"""

from __future__ import annotations

from sqlalchemy import Engine, and_, case, func, select, true

from gexhistory.store.schema import gamma_history, gex_history, regime_signals

GEX, GAMMA, SIGNALS = gex_history, gamma_history, regime_signals


# ---- regime_signals -----------------------------------------------------------------------------

def _direction():
    """+1 for bullish signals, -1 for bearish, NULL otherwise, from trade_direction's words."""
    d = func.lower(func.coalesce(SIGNALS.c.trade_direction, ""))
    return case((d.like("%bull%") | d.like("%long%") | (d == "up") | (d == "call"), 1),
                (d.like("%bear%") | d.like("%short%") | (d == "down") | (d == "put"), -1),
                else_=None)


def _directional_return():
    """The 5-session move signed by the signal's direction (% points); NULL for non-directional ones."""
    return _direction() * SIGNALS.c.price_change_5d


def _signals_where(symbol: str | None, start: str | None = None, end: str | None = None):
    conds = []
    if symbol:
        conds.append(SIGNALS.c.symbol == symbol)
    if start:
        conds.append(SIGNALS.c.timestamp >= start)
    if end:
        conds.append(SIGNALS.c.timestamp <= end)
    return and_(*conds) if conds else true()


def signals_overview(engine: Engine, symbol: str | None) -> dict:
    s = SIGNALS
    q = select(
        func.count().label("total_signals"),
        func.count(s.c.signal_correct).label("resolved"),
        func.sum(case((s.c.signal_correct == 1, 1), else_=0)).label("wins"),
        func.sum(case((s.c.signal_correct == 0, 1), else_=0)).label("losses"),
        func.avg(s.c.confidence_score).label("avg_confidence"),
        func.count(s.c.confidence_score).label("with_confidence"),
        # Resolved signals that carried a confidence, and their wins: the like-for-like realised rate.
        func.count(case((s.c.confidence_score.is_not(None), s.c.signal_correct))).label("rated_resolved"),
        func.sum(case((s.c.confidence_score.is_not(None) & (s.c.signal_correct == 1), 1), else_=0)).label("rated_wins"),
        func.avg(case((s.c.signal_correct.is_not(None), s.c.confidence_score))).label("rated_avg_confidence"),
        func.count(func.distinct(s.c.primary_regime_type)).label("patterns"),
        func.min(s.c.timestamp).label("first_ts"),
        func.max(s.c.timestamp).label("last_ts"),
    ).where(_signals_where(symbol))
    with engine.connect() as conn:
        out = dict(conn.execute(q).one()._mapping)
    for k in ("wins", "losses", "with_confidence", "rated_resolved", "rated_wins"):
        out[k] = int(out[k] or 0)
    return out


def resolved_series(engine: Engine, symbol: str | None) -> list[dict]:
    """Every resolved signal, oldest first: timestamp, pattern, signal_correct, confidence_score (for the
    rolling win rate; at most one row per session and pattern)."""
    s = SIGNALS
    q = (select(s.c.timestamp, s.c.primary_regime_type.label("pattern"), s.c.signal_correct, s.c.confidence_score)
         .where(_signals_where(symbol), s.c.signal_correct.is_not(None)).order_by(s.c.timestamp, s.c.id))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


# Confidence buckets of the calibration table: [lower, upper) in percent, the last one closed at 100.
CONFIDENCE_BUCKETS = ((0, 30), (30, 40), (40, 50), (50, 60), (60, 70), (70, 80), (80, 100))


def calibration(engine: Engine, symbol: str | None) -> list[dict]:
    """Resolved signals per confidence bucket (None: no confidence), with wins and mean confidence."""
    s = SIGNALS
    c = s.c.confidence_score
    bucket = case(*[((c >= lo) & ((c < hi) if hi < 100 else (c <= hi)), i) for i, (lo, hi) in
                    enumerate(CONFIDENCE_BUCKETS)], else_=-1)
    q = (select(bucket.label("bucket"), func.count().label("resolved"),
                func.sum(case((s.c.signal_correct == 1, 1), else_=0)).label("wins"),
                func.avg(c).label("avg_confidence"))
         .where(_signals_where(symbol), s.c.signal_correct.is_not(None)).group_by(bucket))
    with engine.connect() as conn:
        got = {int(r.bucket): r for r in conn.execute(q)}
    out = []
    for i, (lo, hi) in enumerate([*CONFIDENCE_BUCKETS, (None, None)]):
        r = got.get(i if lo is not None else -1)
        out.append({"low": lo, "high": hi, "resolved": int(r.resolved) if r else 0,
                    "wins": int(r.wins or 0) if r else 0, "avg_confidence": r.avg_confidence if r else None})
    return out


def resolved_outcomes(engine: Engine, symbol: str | None, limit: int = 500) -> list[bool]:
    """signal_correct of the most recent `limit` resolved signals, oldest first (for streaks)."""
    s = SIGNALS
    q = (select(s.c.signal_correct).where(_signals_where(symbol), s.c.signal_correct.is_not(None))
         .order_by(s.c.timestamp.desc(), s.c.id.desc()).limit(limit))
    with engine.connect() as conn:
        vals = [bool(r[0]) for r in conn.execute(q)]
    return vals[::-1]


def signals_by_pattern(engine: Engine, symbol: str | None) -> list[dict]:
    s = SIGNALS
    ret = _directional_return()
    q = (select(
        s.c.primary_regime_type.label("pattern"),
        func.count().label("signals"),
        func.count(s.c.signal_correct).label("resolved"),
        func.sum(case((s.c.signal_correct == 1, 1), else_=0)).label("wins"),
        func.sum(case((s.c.signal_correct == 0, 1), else_=0)).label("losses"),
        func.avg(s.c.confidence_score).label("avg_confidence"),
        func.sum(case((s.c.signal_correct == 1, case((ret.is_not(None), 1), else_=0)), else_=0)).label("dir_wins"),
        func.sum(case((s.c.signal_correct == 0, case((ret.is_not(None), 1), else_=0)), else_=0)).label("dir_losses"),
        func.avg(case((s.c.signal_correct == 1, ret), else_=None)).label("avg_win"),
        func.avg(case((s.c.signal_correct == 0, ret), else_=None)).label("avg_loss"),
        func.avg(s.c.price_change_5d).label("avg_move_5d"),
        func.max(s.c.timestamp).label("last_ts"),
    ).where(_signals_where(symbol)).group_by(s.c.primary_regime_type).order_by(func.count().desc(), s.c.primary_regime_type))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    for r in rows:
        for k in ("wins", "losses", "dir_wins", "dir_losses"):
            r[k] = int(r[k] or 0)
    return rows


SIGNAL_COLS = ("symbol", "timestamp", "primary_regime_type", "secondary_regime_type", "confidence_score",
               "trade_direction", "risk_level", "description", "psychology_trap", "spy_price", "vix_current",
               "rsi_score", "net_gamma", "net_gamma_regime", "price_change_1d", "price_change_5d",
               "price_change_10d", "signal_correct", "data_source", "chain_source")


def recent_signals(engine: Engine, symbol: str | None, limit: int = 25, pattern: str | None = None) -> list[dict]:
    s = SIGNALS
    where = _signals_where(symbol)
    if pattern:
        where = and_(where, s.c.primary_regime_type == pattern)
    q = select(*[s.c[c] for c in SIGNAL_COLS]).where(where).order_by(s.c.timestamp.desc(), s.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


# ---- /probability ----------------------------------------------------------------------------------

HORIZONS = (1, 5, 10)


def pattern_odds(engine: Engine, symbol: str | None) -> list[dict]:
    """Per pattern: up/down counts of the stored 1/5/10-session moves, and signal correctness counts."""
    s = SIGNALS
    cols = [s.c.primary_regime_type.label("pattern"), func.count().label("signals"),
            func.count(s.c.signal_correct).label("resolved"),
            func.sum(case((s.c.signal_correct == 1, 1), else_=0)).label("correct")]
    for h in HORIZONS:
        c = s.c[f"price_change_{h}d"]
        cols += [func.count(c).label(f"n_{h}"),
                 func.sum(case((c > 0, 1), else_=0)).label(f"up_{h}"),
                 func.sum(case((c < 0, 1), else_=0)).label(f"down_{h}"),
                 func.avg(c).label(f"avg_{h}")]
    q = (select(*cols).where(_signals_where(symbol)).group_by(s.c.primary_regime_type)
         .order_by(func.count().desc(), s.c.primary_regime_type))
    with engine.connect() as conn:
        return [_ints(dict(r._mapping)) for r in conn.execute(q)]


def _ints(d: dict) -> dict:
    for k, v in d.items():
        if k.startswith(("up_", "down_", "n_")) or k in ("signals", "resolved", "correct", "sessions"):
            d[k] = int(v or 0)
    return d


def _close_regimes(symbol: str):
    """Per stored session: the close snapshot's regime and the close price 1/5/10 sessions later."""
    g = GAMMA
    last_ts = (select(func.max(g.c.timestamp).label("ts")).where(g.c.symbol == symbol)
               .group_by(g.c.date).subquery())
    close = (select(g.c.date, g.c.regime, g.c.spot_price)
             .join_from(g, last_ts, and_(g.c.symbol == symbol, g.c.timestamp == last_ts.c.ts))
             .subquery())
    w = {"order_by": close.c.date}
    return select(close.c.date, close.c.regime, close.c.spot_price,
                  *[func.lead(close.c.spot_price, h).over(**w).label(f"p_{h}") for h in HORIZONS]).subquery()


def regime_odds(engine: Engine, symbol: str) -> list[dict]:
    """Per close-of-session GEX regime: sessions, and up/down counts of the next 1/5/10-session moves."""
    f = _close_regimes(symbol)
    cols = [f.c.regime, func.count().label("sessions")]
    for h in HORIZONS:
        nxt = f.c[f"p_{h}"]
        move = (nxt - f.c.spot_price) / f.c.spot_price * 100.0
        cols += [func.count(nxt).label(f"n_{h}"),
                 func.sum(case((nxt > f.c.spot_price, 1), else_=0)).label(f"up_{h}"),
                 func.sum(case((nxt < f.c.spot_price, 1), else_=0)).label(f"down_{h}"),
                 func.avg(move).label(f"avg_{h}")]
    q = select(*cols).group_by(f.c.regime).order_by(f.c.regime)
    with engine.connect() as conn:
        return [_ints(dict(r._mapping)) for r in conn.execute(q)]


def regime_signal_outcomes(engine: Engine, symbol: str) -> dict[str, tuple[int, int]]:
    """Per close-of-session GEX regime: (correct, resolved) of the signals stored for those sessions.

    Two linear reads joined here by date: the signals' outcomes summed per day, and each session's
    close regime. (Joined in SQL on substr(timestamp, 1, 10), no index could serve the expression and
    every signal scanned every session: 234 ms at ten years against 4 ms at one.)
    """
    g, s = GAMMA, SIGNALS
    last = (select(g.c.date, func.max(g.c.timestamp).label("ts")).where(g.c.symbol == symbol)
            .group_by(g.c.date).subquery())
    closes = (select(last.c.date, g.c.regime)
              .join_from(last, g, and_(g.c.symbol == symbol, g.c.timestamp == last.c.ts)))
    day = func.substr(s.c.timestamp, 1, 10)
    per_day = (select(day.label("day"), func.sum(case((s.c.signal_correct == 1, 1), else_=0)).label("k"),
                      func.count(s.c.signal_correct).label("n"))
               .where(s.c.symbol == symbol).group_by(day))
    with engine.connect() as conn:
        regime = {d: r for d, r in conn.execute(closes)}
        out: dict[str, list[int]] = {}
        for d, k, n in conn.execute(per_day):
            reg = regime.get(d)
            if reg is None or not n:
                continue
            tally = out.setdefault(reg, [0, 0])
            tally[0] += int(k or 0)
            tally[1] += int(n)
    return {r: (k, n) for r, (k, n) in out.items()}


def regime_at(engine: Engine, symbol: str, ts: str) -> str | None:
    """Regime of the last snapshot at or before `ts`."""
    g = GEX
    q = (select(g.c.regime).where(g.c.symbol == symbol, g.c.timestamp <= ts)
         .order_by(g.c.timestamp.desc()).limit(1))
    with engine.connect() as conn:
        return conn.execute(q).scalar()
