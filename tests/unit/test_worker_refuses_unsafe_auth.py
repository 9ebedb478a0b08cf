"""``ragstream worker`` refuses to start on unsafe auth settings in production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="missing-secret"),
        pytest.param({"JWT_SECRET_KEY": "changeme"}, id="well-known-secret"),
        pytest.param({"JWT_SECRET_KEY": "0123456789abcdef"}, id="short-secret"),
        pytest.param(
            {
                "JWT_SECRET_KEY": "k" * 20 + "0123456789abcdefghij",
                "DEFAULT_ADMIN_PASSWORD": "password123",
            },
            id="weak-admin-password",
        ),
    ],
)
def test_production_worker_exits_before_connecting(tmp_path: Path, env: dict[str, str]) -> None:
    """Exit code 2 with the reason on stderr, and the secret itself is never echoed."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JWT_", "RAGSTREAM_", "DEFAULT_ADMIN"))
    }
    full = (
        base
        | {
            "RAGSTREAM_ENV": "production",
            "RAGSTREAM_DATA_DIR": str(tmp_path),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        }
        | env
    )
    done = subprocess.run(
        [sys.executable, "-m", "ragstream.cli", "worker"],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refusing to start" in done.stderr
    for secret in env.values():
        assert secret not in done.stderr + done.stdout
