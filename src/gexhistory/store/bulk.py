"""Many rows into one table in one executemany, sending what SQLAlchemy's insert() would send.

`conn.execute(insert(table), rows)` builds and type-processes a parameter dict per row in Python
(about 20 us a row: half of a cold 3650-day run's writes). Here the statement is SQLAlchemy's own
INSERT, compiled once per (dialect, table, columns) for executemany, and the rows go to the DBAPI
cursor through `Connection.exec_driver_sql` (events, error wrapping and the transaction stay
SQLAlchemy's) after the columns' bind processors (SQLite's float coercion, strict booleans) have been
applied column by column. Values are bound parameters; no value ever enters the SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Callable

from sqlalchemy import Connection, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import CompileError


@dataclass(frozen=True)
class _InsertPlan:
    sql: str
    keys: tuple[str, ...]  # row keys in the order the statement takes its parameters
    names: tuple[str, ...] | None  # parameter names when the driver takes a mapping per row (psycopg)
    processors: tuple[tuple[int, Callable], ...]  # (position in keys, bind processor)

    def parameters(self, rows: list[dict]) -> list:
        get = itemgetter(*self.keys)
        values = list(map(get, rows)) if len(self.keys) > 1 else [(get(r),) for r in rows]
        return self._processed(values)

    def column_parameters(self, columns: dict[str, list], lo: int, hi: int) -> list:
        """Rows lo:hi of `columns` (one list per column), without a dict per row: each column through
        its bind processor, then one transposition into rows."""
        cols = [_as_list(columns[k][lo:hi]) for k in self.keys]
        for j, process in self.processors:
            if getattr(columns[self.keys[j]], "dtype", None) is not None and columns[self.keys[j]].dtype.kind == "f":
                continue  # a float array's tolist() is Python floats already: what a Float processor returns
            cols[j] = list(map(process, cols[j]))
        values = list(zip(*cols))
        if self.names is not None:
            return [dict(zip(self.names, v)) for v in values]
        return values

    def _processed(self, values: list) -> list:
        if self.processors:
            columns = list(zip(*values))
            for j, process in self.processors:
                columns[j] = tuple(map(process, columns[j]))
            values = list(zip(*columns))
        if self.names is not None:
            return [dict(zip(self.names, v)) for v in values]
        return values


@lru_cache(maxsize=256)
def _plan(dialect: Dialect, table: Table, keys: tuple[str, ...], conflict: tuple[str, ...],
          update: tuple[str, ...]) -> _InsertPlan:
    unknown = [k for k in keys if k not in table.c]
    if unknown:  # what insert() says too: a misspelt column must not be dropped silently
        raise CompileError(f"Unconsumed column names: {', '.join(unknown)}")
    compiled = _statement(dialect, table, conflict, update).compile(
        dialect=dialect, column_keys=list(keys), for_executemany=True)
    if dialect.positional:
        order, names = tuple(compiled.positiontup), None
    else:
        order = keys
        names = tuple(compiled.escaped_bind_names.get(k, k) for k in keys)
    processors = []
    for j, key in enumerate(order):
        process = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((j, process))
    return _InsertPlan(str(compiled), order, names, tuple(processors))


def _statement(dialect: Dialect, table: Table, conflict: tuple[str, ...], update: tuple[str, ...]):
    if not conflict:
        return insert(table)
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert  # lazy: only the dialect in use
    elif dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # lazy: only the dialect in use
    else:  # pragma: no cover - the schema supports only these two
        raise NotImplementedError(dialect.name)
    stmt = dialect_insert(table)
    return stmt.on_conflict_do_update(index_elements=list(conflict), set_={c: stmt.excluded[c] for c in update})


def insert_many(conn: Connection, table: Table, rows: list[dict], *, conflict: tuple[str, ...] = (),
                update: tuple[str, ...] = ()) -> int:
    """Insert `rows` (dicts keyed by column, the keys of the first row for all) in one executemany.

    With `conflict` (the columns of a unique key), a row whose key is already stored updates that
    row's `update` columns instead (an upsert)."""
    if not rows:
        return 0
    plan = _plan(conn.dialect, table, tuple(rows[0]), tuple(conflict), tuple(update))
    conn.exec_driver_sql(plan.sql, plan.parameters(rows))
    return len(rows)


def _as_list(values) -> list:
    """A slice of a column as Python values (a numpy array's through tolist: floats, str, None)."""
    return values.tolist() if hasattr(values, "tolist") else list(values)


COLUMN_BATCH = 50_000  # rows per executemany from columns: the parameter tuples of one batch live at a time


def insert_columns(conn: Connection, table: Table, columns: dict) -> int:
    """Insert rows given column-wise (equal-length lists or numpy arrays keyed by column), COLUMN_BATCH
    rows per executemany: a million contracts never become a million dicts, nor all at once Python
    values."""
    n = len(next(iter(columns.values()), []))
    if n == 0:
        return 0
    plan = _plan(conn.dialect, table, tuple(columns), (), ())  # also checks the column names
    if conn.dialect.name == "postgresql":
        return _copy_columns(conn, table, plan, columns, n)
    for lo in range(0, n, COLUMN_BATCH):
        conn.exec_driver_sql(plan.sql, plan.column_parameters(columns, lo, min(lo + COLUMN_BATCH, n)))
    return n


def _copy_columns(conn: Connection, table: Table, plan: _InsertPlan, columns: dict, n: int) -> int:
    """insert_columns on PostgreSQL: COPY FROM STDIN on the transaction's own connection (several
    times faster than an executemany of a million rows). Names are composed as identifiers by psycopg;
    values travel as COPY data, never as SQL text."""
    from psycopg import sql  # lazy: only the dialect in use

    names = [k for k in plan.keys]
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(k) for k in names))
    dbapi = conn.connection.driver_connection
    with dbapi.cursor() as cur, cur.copy(stmt) as copy:
        for lo in range(0, n, COLUMN_BATCH):
            hi = min(lo + COLUMN_BATCH, n)
            for row in zip(*(_as_list(columns[k][lo:hi]) for k in names)):
                copy.write_row(row)
    return n
