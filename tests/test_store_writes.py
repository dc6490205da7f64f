"""The store's fast writes on SQLite and PostgreSQL: what insert_rows stores is what SQLAlchemy's
insert() stores (values, NULLs, types), delete_sessions removes exactly the sessions asked for and
reports it, and the schema check sees a missing index."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import CompileError

from gexhistory.store import writes
from gexhistory.store.db import init_schema, open_engine, schema_is_current
from gexhistory.store.schema import SESSION_TABLES, gamma_daily_summary, gamma_history, gex_history, regime_signals


@pytest.fixture
def engine(db_url):
    eng = open_engine(db_url)
    init_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def computed():
    """A month of real rows for every session table, from the synthetic market."""
    from gexhistory.pipeline.compute import compute_sessions
    from gexhistory.calendar import sessions_between
    from gexhistory.engine.chain_model import ModelParams
    from gexhistory.engine.exposure import Conventions
    from gexhistory.sources.synthetic import SyntheticMarket

    todo = sessions_between(dt.date(2025, 3, 3), dt.date(2025, 3, 28))
    bundles = list(compute_sessions(SyntheticMarket(42), "SPY", todo, Conventions(), ModelParams()))
    out = {t.name: [{**r, "run_id": 7} for b in bundles for r in b[t.name]] for t in SESSION_TABLES}
    assert all(out.values()), "every table needs rows for the comparison to mean something"
    return out


def _odd_rows() -> list[dict]:
    """Values a caller may hand over that the driver alone would store differently or refuse."""
    base = {"data_source": "test", "chain_source": "test", "run_id": None}
    return [
        {**base, "timestamp": "2025-03-03 09:30:00", "net_gex": np.float64(1.5e9), "flip_point": None,
         "call_wall": 600, "put_wall": np.float32(590.5), "spot_price": np.int64(595), "flip_found": np.bool_(True),
         "regime": "POSITIVE", "call_gex": 1e300, "put_gex": -0.0},
        {**base, "timestamp": "2025-03-03 12:30:00", "net_gex": -2.25, "flip_point": 601.125, "call_wall": None,
         "put_wall": None, "spot_price": 599.0, "flip_found": False, "regime": None, "call_gex": 1, "put_gex": None},
        {**base, "timestamp": "2025-03-03 16:00:00", "net_gex": None, "flip_point": None, "call_wall": None,
         "put_wall": None, "spot_price": None, "flip_found": None, "regime": "NEUTRAL", "call_gex": None, "put_gex": None},
    ]


def _stored(engine, table, symbol: str) -> list[tuple]:
    """Every column but id and symbol, in key order, with the SQL type of each value where the backend
    keeps one per value (SQLite): 5.0 stored as INTEGER would read back the same but is not the same."""
    cols = [c for c in table.columns if c.name not in ("id", "symbol")]
    key = table.c.date if table is gamma_daily_summary else table.c.timestamp
    with engine.connect() as conn:
        values = [tuple(r) for r in conn.execute(select(*cols).where(table.c.symbol == symbol).order_by(key))]
        if engine.dialect.name != "sqlite":
            return values
        kinds = ", ".join(f'typeof("{c.name}")' for c in cols)  # column names from the schema, no values
        types = [tuple(r) for r in conn.execute(
            text(f"SELECT {kinds} FROM {table.name} WHERE symbol = :s ORDER BY {key.name}"), {"s": symbol})]
    return [v + t for v, t in zip(values, types)]


def test_insert_rows_stores_what_sqlalchemy_insert_stores(engine, computed):
    for table in SESSION_TABLES:
        rows = computed[table.name]
        with engine.begin() as conn:
            conn.execute(insert(table), [{**r, "symbol": "REF"} for r in rows])
            assert writes.insert_rows(conn, table, [{**r, "symbol": "NEW"} for r in rows]) == len(rows)
        ref, new = _stored(engine, table, "REF"), _stored(engine, table, "NEW")
        assert len(new) == len(rows) and new == ref, table.name


def test_odd_values_are_coerced_like_sqlalchemy(engine):
    rows = _odd_rows()
    with engine.begin() as conn:
        conn.execute(insert(gex_history), [{**r, "symbol": "REF"} for r in rows])
        writes.insert_rows(conn, gex_history, [{**r, "symbol": "NEW"} for r in rows])
    ref, new = _stored(engine, gex_history, "REF"), _stored(engine, gex_history, "NEW")
    assert new == ref
    first = dict(zip([c.name for c in gex_history.columns if c.name not in ("id", "symbol")], new[0]))
    assert first["spot_price"] == 595.0 and first["put_wall"] == 590.5 and first["flip_found"] is True
    assert first["flip_point"] is None and first["call_gex"] == 1e300



def test_text_that_needs_escaping_is_stored_as_given(engine):
    """On PostgreSQL plain inserts go by COPY, whose text format has its own escapes (tab, newline,
    backslash, \\N for NULL): every such character is stored as it was given, as insert() stores it."""
    words = ["a\tb", "line\nnext", "back\\slash", "\\N", "it's \"q\"", "caf\u00e9 \u20ac", "", "\r\n"]
    base = {"data_source": "src\tx", "chain_source": "c\\d", "run_id": None, "net_gex": 0.1 + 0.2}
    rows = [{**base, "timestamp": f"2025-03-03 10:{i:02d}:00", "regime": w, "mm_state": w[::-1]}
            for i, w in enumerate(words)]
    with engine.begin() as conn:
        conn.execute(insert(gex_history), [{**r, "symbol": "REF"} for r in rows])
        writes.insert_rows(conn, gex_history, [{**r, "symbol": "NEW"} for r in rows])
    ref, new = _stored(engine, gex_history, "REF"), _stored(engine, gex_history, "NEW")
    assert new == ref
    with engine.connect() as conn:
        got = conn.execute(select(gex_history.c.regime, gex_history.c.net_gex, gex_history.c.data_source)
                           .where(gex_history.c.symbol == "NEW").order_by(gex_history.c.timestamp)).all()
    assert [r[0] for r in got] == words and {r[1] for r in got} == {0.30000000000000004}
    assert {r[2] for r in got} == {"src\tx"}


def test_a_violated_constraint_is_sqlalchemys_error_and_writes_nothing(engine):
    """A row the table refuses (a NULL timestamp) fails the whole batch with SQLAlchemy's
    IntegrityError on both backends, as insert() would, and the rows before it are not kept."""
    from sqlalchemy.exc import IntegrityError

    good = {"symbol": "BAD", "data_source": "t", "chain_source": "t", "timestamp": "2025-03-03 09:30:00"}
    with pytest.raises(IntegrityError, match="timestamp"):
        with engine.begin() as conn:
            writes.insert_rows(conn, gex_history, [good, {**good, "timestamp": None}])
    with engine.connect() as conn:
        assert conn.execute(select(gex_history.c.id)).all() == []


def test_symbols_holding_finds_the_held_among_more_than_one_in_list(engine):
    """1,234 symbols asked at once (more than one SQLite IN list, one PostgreSQL array): exactly the
    ones with rows in the span come back, whichever table holds them."""
    from gexhistory.store.members import IN_LIST_MAX

    asked = [f"S{i:04d}" for i in range(1234)]
    assert len(asked) > 2 * IN_LIST_MAX
    held = {"S0000": "gex_history", "S0499": "gamma_history", "S0500": "gamma_daily_summary",
            "S1233": "regime_signals", "S0777": "gex_history"}
    day = dt.date(2025, 3, 4)
    for sym, name in held.items():
        rows = _session_rows(sym, [day])
        _store(engine, {t.name: rows[t.name] if t.name == name else [] for t in SESSION_TABLES})
    _store(engine, _session_rows("S0100", [dt.date(2025, 3, 10)]))  # held, but outside the span
    _store(engine, _session_rows("OTHER", [day]))  # in the span, not asked
    with engine.connect() as conn:
        found = writes.symbols_holding(conn, asked, dt.date(2025, 3, 3), dt.date(2025, 3, 5))
        assert found == set(held)
        assert writes.symbols_holding(conn, [], dt.date(2025, 3, 3), dt.date(2025, 3, 5)) == set()
    assert writes.held_symbols(engine, asked) == {"S0000", "S0777", "S0500", "S0100"}


# (case, table, column, the value) for the store's refusal of values that are not finite
NON_FINITE = [
    ("inf net GEX", gex_history, "net_gex", float("inf")),
    ("-inf call GEX", gex_history, "call_gex", float("-inf")),
    ("NaN spot", gex_history, "spot_price", float("nan")),
    ("numpy NaN flip", gex_history, "flip_point", np.float64("nan")),
    ("float32 inf wall", gex_history, "put_wall", np.float32("inf")),
    ("inf gamma spot", gamma_history, "spot_price", float("inf")),
    ("NaN summary close", gamma_daily_summary, "close_price", float("nan")),
    ("inf signal price", regime_signals, "spy_price", float("inf")),
]


def _one_row(table, column, value, day="2025-03-03") -> dict:
    prov = {"symbol": "BAD", "data_source": "test", "chain_source": "test"}
    if table is gamma_daily_summary:
        return {**prov, "date": day, column: value}
    row = {**prov, "timestamp": f"{day} 09:30:00", column: value}
    if table is gamma_history:
        row["date"] = day
    if table is regime_signals:
        row["primary_regime_type"] = "X"
    return row


@pytest.mark.parametrize("case, table, column, value", NON_FINITE, ids=[c[0] for c in NON_FINITE])
def test_a_non_finite_value_is_never_stored(engine, case, table, column, value):
    """The store's boundary refuses NaN and infinities with a typed error naming table, column and row;
    the transaction writes nothing (the finite rows before it included)."""
    from gexhistory.errors import NonFiniteValue, WorkFailed

    rows = [_one_row(table, column, 1.0, "2025-03-03"), _one_row(table, column, value, "2025-03-04")]
    with pytest.raises(NonFiniteValue) as err:
        with engine.begin() as conn:
            writes.insert_rows(conn, table, rows)
    assert isinstance(err.value, WorkFailed) and err.value.exit_code == 1
    assert f"in {table.name}.{column} (row 2 of 2)" in str(err.value)
    with engine.connect() as conn:
        assert conn.execute(select(table.c.id).where(table.c.symbol == "BAD")).all() == []


def test_non_finite_outcomes_are_refused_too(engine):
    from gexhistory.errors import NonFiniteValue
    from gexhistory.store.outcomes import update_outcomes

    with engine.begin() as conn:
        writes.insert_rows(conn, regime_signals, [_one_row(regime_signals, "spy_price", 500.0)])
    with engine.connect() as conn:
        (sig_id,) = conn.execute(select(regime_signals.c.id)).one()
    bad = {"id": sig_id, "price_change_1d": 1.0, "price_change_5d": float("nan"), "price_change_10d": None,
           "signal_correct": None}
    with pytest.raises(NonFiniteValue, match="regime_signals.price_change_5d"):
        with engine.begin() as conn:
            update_outcomes(conn, [bad])


def test_a_column_the_table_lacks_is_an_error_not_dropped(engine):
    row = {"symbol": "SPY", "timestamp": "2025-03-03 09:30:00", "data_source": "t", "chain_source": "t", "net_gexx": 1.0}
    with pytest.raises(CompileError, match="net_gexx"):
        with engine.begin() as conn:
            writes.insert_rows(conn, gex_history, [row])
    with engine.connect() as conn:
        assert conn.execute(select(gex_history.c.id)).all() == []


def _session_rows(symbol: str, days: list[dt.date], chain_source: str = "modelled") -> dict[str, list[dict]]:
    prov = {"symbol": symbol, "data_source": "test", "chain_source": chain_source}
    out = {t.name: [] for t in SESSION_TABLES}
    for d in days:
        for hhmm in ("09:30:00", "16:00:00"):
            ts = f"{d} {hhmm}"
            out["gex_history"].append({**prov, "timestamp": ts, "net_gex": 1.0})
            out["gamma_history"].append({**prov, "timestamp": ts, "date": d.isoformat(), "spot_price": 100.0})
        out["regime_signals"].append({**prov, "timestamp": f"{d} 16:00:00", "primary_regime_type": "X"})
        out["gamma_daily_summary"].append({**prov, "date": d.isoformat()})
    return out


def _store(engine, rows: dict[str, list[dict]]) -> None:
    with engine.begin() as conn:
        for t in SESSION_TABLES:
            writes.insert_rows(conn, t, rows[t.name])


def _count(engine, table, symbol: str) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table.c.id).where(table.c.symbol == symbol)).all())


def test_delete_sessions_removes_exactly_the_days_asked_and_says_so(engine):
    days = [dt.date(2021, 1, 4) + dt.timedelta(days=k) for k in range(1200)]  # more than one IN list
    _store(engine, _session_rows("SPY", days))
    _store(engine, _session_rows("QQQ", days[:10]))
    live = [{"symbol": "SPY", "timestamp": f"{days[5]} {hhmm}", "data_source": "polygon",
             "chain_source": writes.LIVE_CHAIN_SOURCE, "net_gex": 2.0} for hhmm in ("10:00:00", "10:30:00")]
    with engine.begin() as conn:
        writes.insert_rows(conn, gex_history, live)
    gone = days[2:1100:3]  # every third day, across the IN-list chunks, days[5] (live) among them
    with engine.begin() as conn:
        removed = writes.delete_sessions(conn, "SPY", gone)
    n = len(gone)
    assert removed == {"gex_history": 2 * n, "gamma_history": 2 * n, "gamma_daily_summary": n, "regime_signals": n}
    assert _count(engine, gamma_daily_summary, "SPY") == len(days) - n
    assert _count(engine, gex_history, "SPY") == 2 * (len(days) - n) + 2  # the live snapshots stay
    assert _count(engine, regime_signals, "QQQ") == 10 and _count(engine, gamma_history, "QQQ") == 20
    with engine.connect() as conn:
        left = {d for (d,) in conn.execute(select(gamma_history.c.date).where(gamma_history.c.symbol == "SPY"))}
    assert left == {d.isoformat() for d in days} - {d.isoformat() for d in gone}


def test_delete_sessions_on_an_empty_window_only_looks(engine):
    _store(engine, _session_rows("SPY", [dt.date(2021, 1, 4)]))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with engine.begin() as conn:
        removed = writes.delete_sessions(conn, "SPY", [dt.date(2022, 1, 3), dt.date(2022, 1, 4)])
    assert removed == dict.fromkeys(removed, 0)
    assert not [s for s in statements if s.lstrip().upper().startswith("DELETE")]


def test_schema_check_sees_a_missing_index(db_url):
    eng = open_engine(db_url)
    assert not schema_is_current(eng)
    init_schema(eng)
    assert schema_is_current(eng)
    with eng.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_gex_history_ts")
    assert not schema_is_current(eng)
    init_schema(eng)
    assert schema_is_current(eng)
    eng.dispose()


def _bars(symbol: str, close: float) -> list[dict]:
    day = {"symbol": symbol, "timeframe": "1d", "timestamp": "2025-03-03 00:00:00", "open": 590.0, "high": 601.5,
           "low": 588.25, "close": close, "volume": 5.5e7, "vwap": 595.1, "trades": 812_345, "close_only": False,
           "data_source": "polygon"}
    minutes = [{"symbol": symbol, "timeframe": "1m", "timestamp": f"2025-03-03 09:{30 + m}:00", "open": 590.0 + m,
                "close": close + m, "high": None, "low": None, "volume": np.float64(1000.0 * m), "data_source": "polygon"}
               for m in range(5)]
    return [day, *minutes]


def test_upsert_bars_stores_and_updates_like_sqlalchemy(engine):
    from sqlalchemy.dialects import postgresql, sqlite

    from gexhistory.store.bars import COLUMNS, upsert_bars
    from gexhistory.store.schema import price_bars

    def reference(conn, rows):  # what upsert_bars did before: the dialect's insert().on_conflict_do_update
        stmt = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(price_bars)
        stmt = stmt.on_conflict_do_update(index_elements=["symbol", "timeframe", "timestamp", "data_source"],
                                          set_={c: stmt.excluded[c] for c in COLUMNS})
        conn.execute(stmt, [{"vwap": None, "trades": None, "close_only": False, **r} for r in rows])

    for close in (596.0, 597.5):  # the second round updates every stored bar
        with engine.begin() as conn:
            reference(conn, _bars("REF", close))
            assert upsert_bars(conn, _bars("NEW", close)) == 6
    ref, new = _stored(engine, price_bars, "REF"), _stored(engine, price_bars, "NEW")
    assert len(new) == 6 and new == ref
    assert [r[5] for r in new] == [597.5, 597.5, 598.5, 599.5, 600.5, 601.5]  # close, updated in place
