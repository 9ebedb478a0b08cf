"""CLI commands find a running ``ragstream dev`` through its state file, and ignore a dead one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragstream.cli import _env
from ragstream.devrun import STATE_FILE


def _state(data_dir: Path, pid: int) -> Path:
    state = data_dir / STATE_FILE
    state.write_text(json.dumps({"pid": pid, "env": {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:4"}}))
    return state


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAGSTREAM_DATA_DIR", str(tmp_path))
    # Recorded, then removed: whatever discovery sets is undone after the test.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "unset")
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    return tmp_path


def test_a_running_dev_stack_is_used(data_dir: Path) -> None:
    """The state file of a live ``ragstream dev`` points the CLI at its services."""
    _state(data_dir, os.getpid())
    _env.discover_dev_stack()
    assert os.environ["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:4"


def test_a_dead_dev_stacks_file_is_ignored_and_removed(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a SIGKILL the file stays behind: the CLI says so instead of using dead ports."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = _state(data_dir, dead.pid)
    _env.discover_dev_stack()
    assert "KAFKA_BOOTSTRAP_SERVERS" not in os.environ
    assert not state.exists()
    assert f"pid {dead.pid}) is not running" in capsys.readouterr().err
