"""The house rules that code review would otherwise have to remember."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from schemas.export import JSON_DIR, json_schemas, render

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["schemas", "streams", "agents", "services", "stores"]
# What each package may import from ours. streams' leaf modules (errors, settings, scrub) are
# importable from everywhere; the rest of streams is the runtime at the top.
LEAVES = {"streams.errors", "streams.settings", "streams.scrub"}
ALLOWED = {
    "schemas": {"schemas"},
    "stores": {"schemas", "stores"},
    "services": {"schemas", "stores", "services"},
    "agents": {"schemas", "services", "agents", "streams"},
    "streams": set(PACKAGES),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(ROOT))) for p in _modules()])
def test_imports_point_downstream(path: Path) -> None:
    """A module imports only the packages below it (plus the leaf errors/settings modules)."""
    package = path.relative_to(ROOT).parts[0]
    for name in _imports(path):
        top = name.split(".")[0]
        if top not in PACKAGES or name in LEAVES:
            continue
        assert top in ALLOWED[package], f"{path.relative_to(ROOT)} imports {name}"


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(ROOT))) for p in _modules()])
def test_every_module_has_a_docstring_and_stays_small(path: Path) -> None:
    """Each module says where it sits in the flow, and none grows into a god object."""
    source = path.read_text()
    if path.name == "__init__.py" and not source.strip():
        return
    assert ast.get_docstring(ast.parse(source)), f"{path.relative_to(ROOT)} has no module docstring"
    assert source.count("\n") < 500, f"{path.relative_to(ROOT)} is over 500 lines: split it"


def test_json_schema_files_match_the_models() -> None:
    """The committed JSON Schema files are what the models generate (run ``ragstream schemas``)."""
    expected = json_schemas()
    committed = {p.name for p in JSON_DIR.glob("*.json")}
    assert committed == set(expected)
    for name, schema in expected.items():
        assert (JSON_DIR / name).read_text() == render(schema), f"{name} is stale"


def test_stdlib_names_are_not_shadowed() -> None:
    """No module of ours is named after a stdlib module (``logging``, ``types``...)."""
    import sys

    for path in _modules():
        assert path.stem not in sys.stdlib_module_names or path.stem == "__init__", path
