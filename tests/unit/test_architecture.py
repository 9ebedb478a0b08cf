"""The house rules that code review would otherwise have to remember.

The layers, bottom to top, each importing only the layers below it (and itself):

    schemas < streams < stores < services < agents < ragstream

``ragstream`` is the composition root: nobody imports it. There are no carve-outs, no
module-level import cycles, and no ``__import__``/``import_module`` of our own modules.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.export import JSON_DIR, json_schemas, render

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["schemas", "streams", "stores", "services", "agents", "ragstream"]
RANK = {name: rank for rank, name in enumerate(LAYERS)}
DYNAMIC = {"__import__", "import_module"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, module, imported names) of every import in ``path``, at any depth."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            if node.level:  # relative: resolve against the module's package
                base = _module_name(path).split(".")
                keep = len(base) - node.level + (path.name == "__init__.py")
                module = ".".join([*base[:keep], node.module])
            yield node.lineno, module, tuple(alias.name for alias in node.names)


def _modules() -> list[Path]:
    return sorted(p for pkg in LAYERS for p in (ROOT / pkg).rglob("*.py"))


def _ours(name: str) -> bool:
    return name.split(".")[0] in RANK


def _params() -> list[object]:
    return [pytest.param(p, id=str(p.relative_to(ROOT))) for p in _modules()]


def layer_violations(path: Path) -> list[str]:
    """Every import in ``path`` of a layer above its own, or of the composition root."""
    layer = path.relative_to(ROOT).parts[0]
    found = []
    for line, name, _ in _imports(path):
        top = name.split(".")[0]
        if top in RANK and (RANK[top] > RANK[layer] or (top == "ragstream" != layer)):
            found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return found


@pytest.mark.parametrize("path", _params())
def test_imports_point_downstream(path: Path) -> None:
    """A module imports only its own layer and the layers below it."""
    assert layer_violations(path) == []


def test_the_check_catches_a_back_edge(tmp_path: Path) -> None:
    """An agent importing the runtime (the old back-edge) is reported."""
    fake = ROOT / "agents" / "_probe_back_edge.py"
    try:
        fake.write_text('"""Probe."""\n\ndef f():\n    from ragstream.runtime import Runtime\n')
        assert layer_violations(fake) == ["agents/_probe_back_edge.py:4 imports ragstream.runtime"]
    finally:
        fake.unlink()


def dynamic_imports_of_ours(path: Path) -> list[str]:
    """``__import__``/``import_module`` calls in ``path`` that (may) load a module of ours.

    A literal name is checked directly; a computed one counts when the file names one of
    our modules in any string (the table it is computed from).
    """
    tree = ast.parse(path.read_text())
    strings = [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    named_ours = [s for s in strings if _ours(s) and "." in s and " " not in s]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in DYNAMIC:
            continue
        arg = node.args[0]
        literal = arg.value if isinstance(arg, ast.Constant) else None
        if (isinstance(literal, str) and _ours(literal)) or (literal is None and named_ours):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


@pytest.mark.parametrize("path", _params())
def test_no_dynamic_imports_of_our_modules(path: Path) -> None:
    """No ``__import__``/``import_module`` hides an edge from the checks here."""
    assert dynamic_imports_of_ours(path) == []


def test_the_dynamic_import_check_catches_the_old_cli(tmp_path: Path) -> None:
    """The old CLI's ``__import__("streams.cli_auth", ...)`` and a table-driven lazy import fail."""
    probe = ROOT / "agents" / "_probe_dynamic.py"
    try:
        probe.write_text(
            '"""Probe."""\nimport importlib\n_LAZY = {"X": "stores.chroma"}\n'
            '__import__("streams.cli_auth", fromlist=["register"])\n'
            "importlib.import_module(_LAZY['X'])\n"
        )
        assert len(dynamic_imports_of_ours(probe)) == 2
    finally:
        probe.unlink()


def _graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (resolved to modules that exist)."""
    paths = {_module_name(p): p for p in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges = set()
        for _, module, names in _imports(path):
            if not _ours(module):
                continue
            # ``from pkg import mod`` depends on pkg.mod; ``from mod import name`` on mod.
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in paths] or [module]
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the import graph, as the modules along it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_level_import_cycles() -> None:
    """No module reaches itself through imports (a package's ``__init__`` counts as its own)."""
    assert find_cycle(_graph()) is None


def test_the_cycle_check_finds_a_cycle() -> None:
    """``find_cycle`` reports a cycle when there is one."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", _params())
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
    for path in _modules():
        assert path.stem not in sys.stdlib_module_names or path.stem == "__init__", path


def test_every_package_is_listed_in_pyproject() -> None:
    """Each layer (and each subpackage) ships: setuptools lists them explicitly."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    packages = {
        _module_name(p.parent / "__init__.py") for p in (ROOT / "ragstream").rglob("__init__.py")
    }
    assert {*LAYERS, *packages} <= listed
