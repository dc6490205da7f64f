"""A fresh clone names nothing outside itself, and its documentation matches the code.

What a user reads is grepped for references to files a clone does not have (the project's private
spec, a `../shared` folder, this machine's paths): the README and docs/, every command's --help, the
text of every page as `gexhistory serve` sends it, the docstrings `help(gx.<name>)` shows, and every
source file. docs/tables.md must describe exactly the schema's columns, the README's health-check
table exactly the kinds `status --check` checks, and every relative link in the README and docs/
must lead to a file of the repository.
"""

from __future__ import annotations

import pydoc
import re

import pytest
from fastapi.testclient import TestClient

import gexhistory as gx
from gexhistory.store import status
from gexhistory.store.schema import metadata
from gexhistory.web.app import create_app
from helpers import REPO, run_cli

OUTSIDE = re.compile(r"\bSPEC\b|\.\./shared|shared/data|/work/")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMANDS = ["init", "backfill", "status", "schedule", "validate", "serve", "import-chains", "snapshot", "export"]


def _outside(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if OUTSIDE.search(line)]


def test_the_grep_finds_what_it_looks_for():
    assert _outside("see SPEC §6\nok\nread ../shared/data/x.csv\n/work/shared/spec") == [
        "see SPEC §6", "read ../shared/data/x.csv", "/work/shared/spec"]
    assert _outside("SPECIAL specs, spectrum, a shared cache") == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_readme_and_docs(path):
    assert _outside(path.read_text()) == []


def test_sources_and_templates():
    files = [p for p in (REPO / "src").rglob("*") if p.suffix in (".py", ".html", ".js", ".css") and p.is_file()]
    assert len(files) > 50
    found = {str(p.relative_to(REPO)): _outside(p.read_text()) for p in files}
    assert {k: v for k, v in found.items() if v} == {}


def test_help_texts(tmp_path):
    texts = [run_cli(["--help"], tmp_path), run_cli(["--help"], tmp_path, script="backfill_historical_data.py")]
    texts += [run_cli([cmd, "--help"], tmp_path) for cmd in COMMANDS]
    for out in texts:
        assert out.returncode == 0, out.stderr
        assert _outside(out.stdout) == [], out.args
    assert "Usage:" in texts[0].stdout and all(c in texts[0].stdout for c in COMMANDS)


def test_python_help():
    names = [n for n in gx.__all__ if n != "__version__"]
    assert {"backfill", "history", "compute_gex", "BackfillResult", "BadInput"} <= set(names)
    for name in [None, *names]:
        text = pydoc.render_doc(gx if name is None else getattr(gx, name), renderer=pydoc.plaintext)
        assert _outside(text.replace(str(REPO), "<clone>")) == [], name  # pydoc names the module's own file


def test_pages_as_served(tmp_path):
    """Every page and its 404 as the app sends them, on a database the real backfill filled."""
    db = str(tmp_path / "gex_copilot.db")
    fill = run_cli(["backfill", "--days", "30", "--symbols", "SPY,QQQ", "--db", db, "--quiet"], tmp_path)
    assert fill.returncode == 0
    app = create_app(db)
    pages = {"/gex/history": 200, "/gex/profile": 200, "/gamma": 200, "/psychology/performance": 200,
             "/probability": 200, "/gex/history?symbol=QQQQ": 404, "/no/such/page": 404}
    with TestClient(app) as client:
        for url, code in pages.items():
            r = client.get(url)
            assert r.status_code == code, url
            assert "<html" in r.text.lower() and _outside(r.text) == [], url
    app.state.db.dispose()


def _documented_columns() -> dict[str, list[str]]:
    """Per `## table` heading of docs/tables.md, the column names its table's rows list (and per
    `### table.column` heading, those of a packed column's stream)."""
    out: dict[str, list[str]] = {}
    table = None
    for line in (REPO / "docs" / "tables.md").read_text().splitlines():
        if line.startswith("## ") or line.startswith("### "):
            table = line.split(" ", 1)[1].strip()
            out[table] = []
        elif table and (m := re.match(r"^\| `([a-z_0-9]+)` \|", line)):
            out[table].append(m.group(1))
    return out


def test_docs_describe_every_table_and_column():
    documented = _documented_columns()
    from gexhistory.store.packed import CONTRACT_COLUMNS

    schema = {name: [c.name for c in t.columns] for name, t in metadata.tables.items()}
    schema["option_chain_contracts.contracts"] = list(CONTRACT_COLUMNS)
    assert sorted(documented) == sorted(schema)
    for name, cols in schema.items():
        assert sorted(documented[name]) == sorted(cols), name
        assert len(documented[name]) == len(set(documented[name])), name


def test_readme_health_check_table_is_what_check_checks():
    text = (REPO / "README.md").read_text()
    section = text[text.index("**Health check.**"):]
    section = section[:section.index("\n\n", section.index("| kind | what |"))]
    kinds = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert kinds == list(status.KINDS)
    assert {"no_rows", "gap", "short_session", "null_heavy", "outlier", "mixed_sources"} <= set(kinds)


def test_relative_links_lead_to_files():
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), f"{path.name} links to {target}, which is not in the repository"
