"""``ragstream token|apikey|users|login|logout`` on a SQLite file (no services needed)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jwt
import pytest

from ragstream.cli import main
from ragstream.cli.auth import parse_ttl
from tests.auth_keys import TEST_SECRET


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A private SQLite database, the test secret and cheap bcrypt."""
    monkeypatch.setenv("RAGSTREAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # no dev-stack discovery
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("JWT_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("JWT_ISSUER", "cli-test")
    monkeypatch.setenv("AUTH_BCRYPT_ROUNDS", "4")
    for name in ("JWT_AUDIENCE", "JWT_ALGORITHM", "JWT_KEY_ID", "DEFAULT_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def _run(
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    stdin: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str]:
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90s", 90, id="seconds"),
        pytest.param("30m", 1800, id="minutes"),
        pytest.param("2h", 7200, id="hours"),
        pytest.param("1d", 86400, id="days"),
        pytest.param("15", 900, id="bare-minutes"),
    ],
)
def test_ttl_parsing(text: str, seconds: int) -> None:
    """TTLs take an s/m/h/d suffix; a bare number is minutes."""
    assert parse_ttl(text) == seconds


def test_token_mints_a_verifiable_jwt(capsys: pytest.CaptureFixture[str]) -> None:
    """``ragstream token`` prints a token with the tenant, scopes, issuer and TTL asked for."""
    code, out = _run(
        capsys,
        "token",
        "--tenant",
        "acme",
        "--scope",
        "search:read",
        "--scope",
        "documents:write,documents:delete",
        "--ttl",
        "5m",
    )
    assert code == 0
    claims = jwt.decode(out.strip(), TEST_SECRET, algorithms=["HS256"], issuer="cli-test")
    assert claims["tenant"] == "acme" and claims["exp"] - claims["iat"] == 300
    assert claims["scopes"] == ["documents:delete", "documents:write", "search:read"]


def test_token_refuses_unknown_scopes(capsys: pytest.CaptureFixture[str]) -> None:
    """A typo in a scope is an error, not a token that silently grants nothing."""
    code, out = _run(capsys, "token", "--tenant", "acme", "--scope", "search:raed")
    assert code == 1 and out == ""


def test_apikey_create_list_revoke(capsys: pytest.CaptureFixture[str]) -> None:
    """The key is printed once; ``list`` never shows it; ``revoke`` marks it revoked."""
    code, key = _run(
        capsys,
        "apikey",
        "create",
        "--tenant",
        "acme",
        "--scope",
        "documents:write",
        "--name",
        "etl",
    )
    key = key.strip()
    assert code == 0 and key.startswith("rsk_")
    key_id = key.split("_")[1]
    code, listed = _run(capsys, "apikey", "list", "--tenant", "acme")
    [entry] = json.loads(listed)
    assert entry["key_id"] == key_id and entry["revoked_at"] is None
    assert key.split("_", 2)[2] not in listed
    assert _run(capsys, "apikey", "revoke", key_id)[0] == 0
    assert json.loads(_run(capsys, "apikey", "list")[1])[0]["revoked_at"] is not None
    assert _run(capsys, "apikey", "revoke", key_id)[0] == 1


def test_users_and_login_and_refresh(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Create, list, re-permission and disable a user; login, rotate, detect reuse, logout."""
    code, _ = _run(
        capsys,
        "users",
        "create",
        "alice",
        "--tenant",
        "acme",
        "--permission",
        "search:read",
        "--password-stdin",
        stdin="correct horse\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0
    code, out = _run(
        capsys,
        "login",
        "alice",
        "--password-stdin",
        stdin="correct horse\n",
        monkeypatch=monkeypatch,
    )
    first = json.loads(out)
    assert code == 0 and first["token_type"] == "Bearer"
    claims = jwt.decode(first["access_token"], TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "user:alice" and claims["scopes"] == ["search:read"]

    def refresh(token: str) -> tuple[int, str]:
        return _run(capsys, "login", "--refresh-stdin", stdin=f"{token}\n", monkeypatch=monkeypatch)

    code, out = refresh(first["refresh_token"])
    second = json.loads(out)
    assert code == 0 and second["refresh_token"] != first["refresh_token"]
    assert refresh(first["refresh_token"])[0] == 1  # reuse
    assert refresh(second["refresh_token"])[0] == 1  # family revoked
    assert _run(capsys, "users", "set-permissions", "alice", "search:read", "admin")[0] == 0
    assert _run(capsys, "users", "disable", "alice")[0] == 0
    [user] = json.loads(_run(capsys, "users", "list")[1])
    assert user["disabled"] is True and user["permissions"] == ["admin", "search:read"]
    assert "password" not in json.dumps(user)
    code, _ = _run(
        capsys,
        "login",
        "alice",
        "--password-stdin",
        stdin="correct horse\n",
        monkeypatch=monkeypatch,
    )
    assert code == 1
    assert _run(capsys, "logout", stdin="rrt_unknown\n", monkeypatch=monkeypatch)[0] == 1
