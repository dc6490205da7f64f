"""engine/ is pure computation: no module of it imports the calendar (whose lookups may write a cache
file) other than for type annotations; callers hand it the sessions it needs."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import numpy as np

ENGINE = Path(__file__).resolve().parents[1] / "src" / "gexhistory" / "engine"


def _runtime_imports(tree: ast.AST) -> list[str]:
    """Modules imported outside `if TYPE_CHECKING:` blocks."""
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def test_no_engine_module_imports_the_calendar():
    offenders = {p.name: [m for m in _runtime_imports(ast.parse(p.read_text())) if m.startswith("gexhistory.calendar")]
                 for p in sorted(ENGINE.glob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_chain_model_reads_only_the_sessions_it_is_given(monkeypatch):
    from gexhistory import calendar
    from gexhistory.engine.chain_model import ChainModel, sessions_span

    dates = [s.date for s in calendar.sessions_between(dt.date(2023, 1, 3), dt.date(2023, 9, 29))]
    sessions = calendar.sessions_between(*sessions_span(dates))
    close = 400.0 * np.exp(0.004 * np.sin(np.arange(len(dates))))

    def refuse(*a, **k):
        raise AssertionError("the engine asked the calendar")

    for name in ("sessions_between", "sessions_before", "session_on"):
        monkeypatch.setattr(calendar, name, refuse)
    chain = ChainModel("SPY", dates, close, sessions=sessions).chain_for(len(dates) - 1)
    assert len(chain) > 100
    assert set(chain.expiry_close.tolist()) <= {s.close.timestamp() for s in sessions}
