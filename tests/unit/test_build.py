"""The build and CI files agree with each other: pre-commit runs the checks CI runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["schemas", "streams", "stores", "services", "agents", "ragstream"]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _hooks() -> dict[str, dict]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return {hook["id"]: repo | hook for repo in config["repos"] for hook in repo["hooks"]}


def _make_recipe(target: str) -> list[str]:
    """The command lines of one Makefile target."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_pre_commit_ruff_is_the_pinned_ruff() -> None:
    """The ruff hook's rev is the exact ruff version the test extra pins."""
    (pin,) = [d for d in _pyproject()["project"]["optional-dependencies"]["test"] if "ruff" in d]
    match = re.fullmatch(r"ruff==(\S+?)(\s*;.*)?", pin)
    assert match, f"ruff must be pinned exactly in the test extra, got {pin!r}"
    hooks = _hooks()
    assert hooks["ruff-check"]["rev"] == f"v{match.group(1)}"
    assert hooks["ruff-format"]["rev"] == f"v{match.group(1)}"


def test_pre_commit_runs_mypy_from_the_venv_on_every_package() -> None:
    """The mypy hook is the project's own mypy (its config) on every package, as make lint."""
    mypy = _hooks()["mypy"]
    assert mypy["repo"] == "local"
    assert mypy["entry"].split() == [".venv/bin/mypy", *PACKAGES]
    assert mypy["pass_filenames"] is False
    assert "$(BIN)/mypy $(PACKAGES)" in _make_recipe("lint")
    assert f"PACKAGES := {' '.join(PACKAGES)}" in (ROOT / "Makefile").read_text()


def test_make_lint_checks_what_ci_fails_on() -> None:
    """make lint runs ruff check, ruff format --check and mypy; .ci/run runs lint and test."""
    recipe = _make_recipe("lint")
    assert "$(BIN)/ruff check ." in recipe
    assert "$(BIN)/ruff format --check ." in recipe
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^timeout .* make lint ", ci, re.MULTILINE)
    assert re.search(r"^timeout .* make test ", ci, re.MULTILINE)


def test_mypy_is_strict() -> None:
    """mypy runs in strict mode, relaxed only for Faust's untyped decorators in the app."""
    mypy = _pyproject()["tool"]["mypy"]
    assert mypy["strict"] is True
    for override in mypy.get("overrides", []):
        relaxed = {k for k, v in override.items() if k != "module" and v is False}
        assert override["module"] == ["ragstream.app"]
        assert relaxed == {"disallow_untyped_decorators"}
