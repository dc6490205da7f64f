"""Every SQL statement is parameterised (SPEC §8): no SQL text in src/ is built from values at run time.

The audit parses every module of src/ and flags (1) an f-string, `%`, `+` or `.format()` passed to
execute / exec_driver_sql / executemany / executescript / text(), and (2) any SQL-looking string
built the same way anywhere (so `sql = f"SELECT ..."; conn.execute(text(sql))` is caught too).
The few statements that cannot take bind parameters (PRAGMA, DDL) are listed below with the reason
they are safe; a listed entry that no longer exists fails the test, so the list stays honest.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gexhistory"
SQL_CALLS = {"execute", "exec_driver_sql", "executemany", "executescript", "text"}
SQL_WORDS = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|ALTER|CREATE|DROP|PRAGMA|WITH|REPLACE|VACUUM|ATTACH)\b",
                       re.IGNORECASE)

# (file relative to src/gexhistory, text on the flagged line) -> why it is safe
ALLOWED = {
    ("store/db.py", "PRAGMA busy_timeout={busy_ms:d}"):
        "an int computed from GEXHISTORY_SQLITE_BUSY_SECONDS, parsed and range-checked; PRAGMA takes no bind parameters",
    ("store/db.py", "PRAGMA max_page_count={max_pages:d}"):
        "an int parsed and range-checked from GEXHISTORY_SQLITE_MAX_PAGES; PRAGMA takes no bind parameters",
    ("store/db.py", "ALTER TABLE {table.name} ADD COLUMN"):
        "table, column and type names come from the schema metadata, never from input; DDL takes no parameters",
    ("store/db.py", "ALTER TABLE {t} ALTER COLUMN \"{c}\" SET STORAGE {storage}"):
        "table, column and storage come from schema.PG_STORAGE, never from input; DDL takes no parameters",
}


def _built(node: ast.AST) -> bool:
    """Is this expression a string assembled at run time?"""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return _stringy(node.left) or _stringy(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _stringy(node.func.value)
    return False


def _stringy(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(node, ast.JoinedStr) \
        or _built(node)


def _literal_text(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) + _literal_text(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _literal_text(node.func.value)
    return ""


def audit(source: str, name: str = "<src>") -> list[tuple[int, str]]:
    """(line, source line) of every SQL text built at run time in `source`."""
    tree = ast.parse(source, filename=name)
    lines = source.splitlines()
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            fname = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if fname in SQL_CALLS and node.args and _built(node.args[0]):
                found.add(node.args[0].lineno)
        if _built(node) and SQL_WORDS.match(_literal_text(node)):
            found.add(node.lineno)
    return [(n, lines[n - 1].strip()) for n in sorted(found)]


def test_no_sql_built_from_values_in_src():
    flagged, seen_allowed = [], set()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for lineno, line in audit(path.read_text(), rel):
            hits = [k for k in ALLOWED if k[0] == rel and k[1] in line]
            if hits:
                seen_allowed.update(hits)
            else:
                flagged.append(f"{rel}:{lineno}: {line}")
    assert flagged == [], "SQL built from values (use bind parameters or SQLAlchemy Core):\n" + "\n".join(flagged)
    assert seen_allowed == set(ALLOWED), f"stale allow-list entries: {set(ALLOWED) - seen_allowed}"


def test_audit_catches_each_way_of_building_sql():
    bad = '''
conn.execute(text(f"SELECT * FROM gex_history WHERE symbol = '{symbol}'"))
conn.exec_driver_sql("DELETE FROM t WHERE id = %s" % rid)
cur.execute("SELECT * FROM t WHERE s = '" + s + "'")
conn.execute(text("SELECT * FROM t WHERE s = '{}'".format(s)))
sql = f"UPDATE t SET x = {x}"
'''
    assert [n for n, _ in audit(bad)] == [2, 3, 4, 5, 6]
    good = '''
conn.execute(select(t.c.x).where(t.c.symbol == symbol))
conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (key,))
conn.execute(text("SELECT COUNT(*) FROM t WHERE symbol = :s"), {"s": symbol})
msg = f"{n} rows written"
'''
    assert audit(good) == []
