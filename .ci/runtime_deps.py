"""Every third-party module src/ imports, at the top of a module or inside a function, must belong to a
distribution in pyproject's [project].dependencies (or to the optional extra that names it), so that a
plain `pip install .` never meets a ModuleNotFoundError at run time. Run with the runtime-only venv's
Python from the repository root (.ci/runtime_only.sh); prints the imports found, exits 1 on a gap."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRA_ALLOWED = {"cluster"}  # imported only where the feature is used, with an error naming the extra


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def imported_modules() -> dict[str, list[str]]:
    """Top-level module -> the files importing it (absolute imports only: relative ones are ours)."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                top = n.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("gexhistory", "__future__"):
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for k in EXTRA_ALLOWED for r in project.get("optional-dependencies", {}).get(k, [])}
    owners = packages_distributions()
    missing = []
    for module, files in sorted(imported_modules().items()):
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
        ok = dists & declared or dists & extras
        print(f"{module:<20} {', '.join(sorted(dists)):<28} {'ok' if ok else 'NOT DECLARED'} ({len(files)} imports)")
        if not ok:
            missing.append(f"{module} (imported by {files[0]}) is not in [project].dependencies")
    for m in missing:
        print(f"error: {m}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
