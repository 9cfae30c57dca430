"""Nothing below the portal imports it: only the CLI (which starts it) may (ARCHITECTURE.md:
"portal and cli sit on top")."""

from __future__ import annotations

import ast
from pathlib import Path

import ensu

SOURCE = Path(ensu.__file__).parent
ABOVE = {"portal", "cli"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_module_below_the_portal_imports_it() -> None:
    offenders = [
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if path.relative_to(SOURCE).parts[0] not in ABOVE
        and any(name == "ensu.portal" or name.startswith("ensu.portal.") for name in _imports(path))
    ]
    assert offenders == []


def test_the_check_sees_an_import_of_the_portal(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from ensu.portal import web\nimport ensu.portal.app\n")
    assert {"ensu.portal.web", "ensu.portal.app"} <= _imports(module)
