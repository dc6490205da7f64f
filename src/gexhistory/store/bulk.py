"""Many rows into one table in one executemany, sending what SQLAlchemy's insert() would send.

`conn.execute(insert(table), rows)` builds and type-processes a parameter dict per row in Python
(about 20 us a row: half of a cold 3650-day run's writes). Here the statement is SQLAlchemy's own
INSERT, compiled once per (dialect, table, columns) for executemany, and the rows go to the DBAPI
cursor through `Connection.exec_driver_sql` (events, error wrapping and the transaction stay
SQLAlchemy's) after the columns' bind processors (SQLite's float coercion, strict booleans) have been
applied column by column. Values are bound parameters; no value ever enters the SQL text.

On PostgreSQL, plain inserts into a table without binary columns go through COPY instead (psycopg's
`Cursor.copy`, text format, on the transaction's own connection): for the session tables' few
thousand rows of floats and short strings it takes a fifth of the executemany's time (0.006 s
against 0.031 s for 3,000 rows of 20 columns). A table with a bytea column keeps the executemany:
COPY's text format writes bytes as hex, twice their size, and was slower there.

It is also the store's one door for bulk rows, so it refuses NaN and infinities in float columns
(`NonFiniteValue`): SQLite would store NaN as NULL and PostgreSQL as 'NaN', an inf breaks every
average read back, and CHECK constraints cannot be added to existing tables without rebuilding them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Callable

from sqlalchemy import Connection, Float, LargeBinary, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import CompileError, DBAPIError

from gexhistory.errors import NonFiniteValue


@dataclass(frozen=True)
class _InsertPlan:
    sql: str
    keys: tuple[str, ...]  # row keys in the order the statement takes its parameters
    names: tuple[str, ...] | None  # parameter names when the driver takes a mapping per row (psycopg)
    processors: tuple[tuple[int, Callable], ...]  # (position in keys, bind processor)
    table: str = ""
    floats: tuple[int, ...] = ()  # positions in keys of the table's float columns
    copy_sql: str | None = None  # COPY ... FROM STDIN, where the rows may go by COPY (PostgreSQL)

    def parameters(self, rows: list[dict]) -> list:
        """The executemany's parameters: a mapping per row where the driver takes names, else tuples."""
        values = self.values(rows)
        if self.names is not None:
            return [dict(zip(self.names, v)) for v in values]
        return values

    def values(self, rows: list[dict]) -> list:
        """The rows as tuples in `keys` order, non-finite floats refused and bind processors applied."""
        get = itemgetter(*self.keys)
        values = list(map(get, rows)) if len(self.keys) > 1 else [(get(r),) for r in rows]
        if self.processors or self.floats:
            columns = list(zip(*values))
            for j in self.floats:
                _refuse_non_finite(self.table, self.keys[j], columns[j])
            if self.processors:
                for j, process in self.processors:
                    columns[j] = tuple(map(process, columns[j]))
                values = list(zip(*columns))
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
    floats = tuple(j for j, key in enumerate(order) if isinstance(table.c[key].type, Float))
    copy_sql = None
    if dialect.name == "postgresql" and not conflict and not any(
            isinstance(c.type, LargeBinary) for c in table.c):
        quote = dialect.identifier_preparer.quote
        copy_sql = (f"COPY {dialect.identifier_preparer.format_table(table)} "
                    f"({', '.join(quote(k) for k in order)}) FROM STDIN")
    return _InsertPlan(str(compiled), order, names, tuple(processors), table.name, floats, copy_sql)


def refuse_non_finite(table: Table, rows: list[dict]) -> None:
    """The same refusal for rows written another way (a keyed update, a chain's contracts): every
    float column of `table` among the rows' keys."""
    if not rows:
        return
    for key in rows[0]:
        if key in table.c and isinstance(table.c[key].type, Float):
            _refuse_non_finite(table.name, key, tuple(r.get(key) for r in rows))


def _refuse_non_finite(table: str, column: str, values: tuple) -> None:
    """Raise NonFiniteValue when `values` (one column; None is NULL) holds a NaN or an infinity. The
    whole column at once in numpy: None becomes NaN there, so NaNs beyond the Nones are real ones."""
    import numpy as np  # lazy: rows to write exist only after a computation, which loaded numpy

    x = np.array(values, dtype=float)
    bad = ~np.isfinite(x)
    if not bad.any() or (bad.sum() == values.count(None) and not np.isinf(x).any()):
        return
    i = next(k for k, v in enumerate(values) if v is not None and not np.isfinite(float(v)))
    raise NonFiniteValue(f"refused to store {values[i]!r} in {table}.{column} (row {i + 1} of {len(values)}): "
                         "a computed value is not finite; nothing of this batch was written")


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
    if plan.copy_sql is not None:
        _copy(conn, plan, plan.values(rows))
    else:
        conn.exec_driver_sql(plan.sql, plan.parameters(rows))
    return len(rows)


def _copy(conn: Connection, plan: _InsertPlan, values: list) -> None:
    """COPY `values` in on the transaction's psycopg connection; a driver error is raised as
    SQLAlchemy's (IntegrityError for a NOT NULL or unique violation), as the executemany's would be."""
    dbapi = conn.connection.dbapi_connection
    try:
        with dbapi.cursor() as cur, cur.copy(plan.copy_sql) as copy:
            for row in values:
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(plan.copy_sql, None, exc, conn.dialect.loaded_dbapi.Error) from exc
