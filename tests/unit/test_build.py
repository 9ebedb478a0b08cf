"""The build and CI files (no Docker engine here): pre-commit runs CI's checks, and the
Dockerfile is multi-stage, lock before source, pinned, non-root, with a working healthcheck."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
import yaml

from ragstream.devstack import free_port

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
    assert re.search(r"^timeout .* make lint \|\| lint_status=", ci, re.MULTILINE)
    assert re.search(r"^timeout .* make test .*\|\| status=", ci, re.MULTILINE)
    assert re.search(r"^exit \"\$status\"$", ci, re.MULTILINE)


def test_mypy_is_strict() -> None:
    """mypy runs in strict mode, relaxed only for Faust's untyped decorators."""
    mypy = _pyproject()["tool"]["mypy"]
    assert mypy["strict"] is True
    for override in mypy.get("overrides", []):
        relaxed = {k for k, v in override.items() if k != "module" and v is False}
        assert set(override["module"]) <= {"ragstream.app", "ragstream.endpoints"}
        assert relaxed == {"disallow_untyped_decorators"}


def _dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuations joined."""
    text = (ROOT / "Dockerfile").read_text()
    logical = re.sub(r"\\\n\s*", " ", text)
    instructions = []
    for line in logical.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, by stage name, in order."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for keyword, args in _dockerfile():
        if keyword == "FROM":
            image, _, name = args.partition(" AS ")
            current = stages.setdefault(name.strip(), [])
            current.append((keyword, image.strip()))
        elif current is not None:
            current.append((keyword, args))
    return stages


def _base_image() -> str:
    (arg,) = [a for k, a in _dockerfile() if k == "ARG" and a.startswith("PYTHON_IMAGE=")]
    return arg.removeprefix("PYTHON_IMAGE=")


def _first(instructions: list[tuple[str, str]], keyword: str, pattern: str) -> int:
    """Index of the first instruction ``keyword`` whose arguments match ``pattern``."""
    return next(
        i for i, (k, a) in enumerate(instructions) if k == keyword and re.search(pattern, a)
    )


def test_base_image_is_pinned_by_patch_version_and_digest() -> None:
    """Every stage starts from the same python 3.11 slim image, pinned by tag and sha256."""
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", _base_image()), (
        _base_image()
    )
    assert {s[0][1] for s in _stages().values()} == {"${PYTHON_IMAGE}"}


def test_builder_installs_the_lock_before_it_copies_the_source() -> None:
    """The locked dependencies are a layer of their own, built before any package is copied."""
    builder = _stages()["builder"]
    lock = _first(builder, "COPY", r"\buv\.lock\b")
    deps = _first(builder, "RUN", r"uv sync .*--no-install-project")
    assert "--locked" in builder[deps][1]
    source = [i for i, (k, a) in enumerate(builder) if k == "COPY" and "uv.lock" not in a]
    assert lock < deps < min(source)
    copied = {a.split()[0] for k, a in builder if k == "COPY"}
    packages = {p.split(".")[0] for p in _pyproject()["tool"]["setuptools"]["packages"]}
    assert packages <= copied, f"packages missing from the image: {packages - copied}"
    assert "--locked" in builder[_first(builder, "RUN", r"uv sync(?!.*--no-install-project)")][1]


def test_image_uv_is_the_makefile_uv() -> None:
    """The image installs the uv version the Makefile pins, so both read uv.lock alike."""
    (version,) = re.findall(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    builder = _stages()["builder"]
    assert builder[_first(builder, "RUN", r"pip install")][1].endswith(f"uv=={version}")


def test_runtime_stage_copies_the_venv_and_runs_as_a_user() -> None:
    """The last stage holds only the built venv, runs as a non-root user, and has a healthcheck."""
    stages = _stages()
    name = list(stages)[-1]
    runtime = stages[name]
    assert name != "builder"
    assert ("COPY", "--from=builder /app/.venv /app/.venv") in runtime
    assert not any(k == "RUN" and "pip install" in a for k, a in runtime)
    users = [a for k, a in runtime if k == "USER"]
    assert users and users[-1] not in {"root", "0"} and not users[-1].startswith(("root:", "0:"))
    assert _first(runtime, "USER", ".") < _first(runtime, "ENTRYPOINT", ".")
    assert [k for k, _ in runtime].count("HEALTHCHECK") == 1


def _serve(status: int) -> tuple[http.server.ThreadingHTTPServer, list[str]]:
    """A loopback server answering every GET with ``status``, recording the paths asked."""
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, paths


def _healthcheck(port: str) -> int:
    """Run the Dockerfile's HEALTHCHECK command as Docker does (``/bin/sh -c``)."""
    (args,) = [a for k, a in _stages()[list(_stages())[-1]] if k == "HEALTHCHECK"]
    command = args[args.index(" CMD ") + len(" CMD ") :]
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "RAGSTREAM_HTTP_PORT": port,
    }
    return subprocess.run(["/bin/sh", "-c", command], env=env, timeout=30).returncode


@pytest.mark.parametrize(
    ("status", "healthy"), [pytest.param(200, True, id="200"), pytest.param(503, False, id="503")]
)
def test_healthcheck_probes_the_live_endpoint_on_the_http_port(status: int, healthy: bool) -> None:
    """The probe GETs /health/live on RAGSTREAM_HTTP_PORT and fails unless the answer is 2xx."""
    server, paths = _serve(status)
    try:
        code = _healthcheck(str(server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()
    assert (code == 0) is healthy
    assert paths == ["/health/live"]


def test_healthcheck_defaults_to_port_6066_and_fails_when_nothing_listens() -> None:
    """Without RAGSTREAM_HTTP_PORT the probe targets 6066; a refused connection is unhealthy."""
    args = next(a for k, a in _dockerfile() if k == "HEALTHCHECK")
    assert "127.0.0.1:${RAGSTREAM_HTTP_PORT:-6066}/health/live" in args
    assert _healthcheck(str(free_port())) != 0  # nothing listens on a free port
