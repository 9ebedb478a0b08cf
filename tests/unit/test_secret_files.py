"""``NAME_FILE`` for every secret, masking, and PostgreSQL TLS options mapped onto asyncpg."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from stores._sql import _asyncpg_tls
from streams.errors import ConfigError
from streams.observability import scrub_event
from streams.settings import Settings

_SECRET = "hunter2-Zq9"

_SASL = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}

# (environment variable, how to read the value back from Settings, the variables it needs)
_SECRETS = [
    (
        "KAFKA_SASL_PASSWORD",
        lambda s: s.kafka.sasl_password,
        {**_SASL, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"},
    ),
    ("KAFKA_SSL_KEY_PASSWORD", lambda s: s.kafka.ssl_key_password),
    (
        "KAFKA_SASL_OAUTHBEARER_TOKEN",
        lambda s: s.kafka.sasl_oauthbearer_token,
        {**_SASL, "KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
    ),
    ("ELASTICSEARCH_API_KEY", lambda s: s.elasticsearch.api_key),
    ("CHROMA_AUTH_TOKEN", lambda s: s.chroma.auth_token),
    ("OPENAI_API_KEY", lambda s: s.openai.api_key),
    ("JWT_SECRET_KEY", lambda s: s.security.secret_key),
    ("SENTRY_DSN", lambda s: s.sentry.dsn),
    ("DEFAULT_ADMIN_PASSWORD", lambda s: s.security.default_admin_password),
]


@pytest.mark.parametrize(
    ("name", "read", "needs"),
    [pytest.param(*(c if len(c) == 3 else (*c, {})), id=c[0]) for c in _SECRETS],
)
def test_every_secret_reads_its_file(
    name: str, read: object, needs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``NAME_FILE`` supplies the secret (trailing newline dropped); it never shows in dumps."""
    for key, value in needs.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "secret"
    path.write_text(_SECRET + "\n")
    monkeypatch.setenv(f"{name}_FILE", str(path))
    settings = Settings()
    value = read(settings)  # type: ignore[operator]
    assert value is not None and value.get_secret_value() == _SECRET
    assert _SECRET not in repr(settings) + str(settings.masked())


def test_database_url_file_and_masked_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog URL can come from a file; its password is masked in repr and dumps."""
    path = tmp_path / "url"
    path.write_text(f"postgresql+asyncpg://rag:{_SECRET}@db:5432/rag\n")
    monkeypatch.setenv("DATABASE_URL_FILE", str(path))
    settings = Settings()
    assert settings.database_url == f"postgresql+asyncpg://rag:{_SECRET}@db:5432/rag"
    assert settings.masked()["database"]["url"] == "postgresql+asyncpg://rag:***@db:5432/rag"
    assert _SECRET not in repr(settings)


def test_both_or_unreadable_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting both ``NAME`` and ``NAME_FILE``, or a missing file, is refused by name."""
    monkeypatch.setenv("CHROMA_AUTH_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="CHROMA_AUTH_TOKEN_FILE"):
        Settings()
    monkeypatch.setenv("CHROMA_AUTH_TOKEN", "x")
    with pytest.raises(ConfigError, match="not both"):
        Settings()


def test_sentry_events_lose_connection_secrets() -> None:
    """Client arguments in a frame's locals or a message never reach Sentry."""
    event = {
        "message": f"kwargs={{'sasl_plain_password': '{_SECRET}'}} KAFKA_SASL_PASSWORD={_SECRET}",
        "exception": {
            "values": [
                {
                    "stacktrace": {
                        "frames": [
                            {
                                "vars": {
                                    "kwargs": {
                                        "sasl_plain_password": _SECRET,
                                        "ssl_key_password": _SECRET,
                                    },
                                    "auth_token": _SECRET,
                                }
                            }
                        ]
                    }
                }
            ]
        },
    }
    assert _SECRET not in str(scrub_event(event))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("sslmode=require", "require", id="require"),
        pytest.param("sslmode=disable", False, id="disable"),
        pytest.param("sslmode=prefer", "prefer", id="prefer"),
    ],
)
def test_postgres_sslmode_without_verification(query: str, expected: object) -> None:
    """libpq's sslmode becomes asyncpg's ``ssl`` and leaves the URL (no unknown keyword)."""
    url, args = _asyncpg_tls(make_url(f"postgresql+asyncpg://u@db/rag?{query}&application_name=x"))
    assert args == {"ssl": expected}
    assert dict(url.query) == {"application_name": "x"}


def test_postgres_verify_full_with_a_ca_file(tmp_path: Path) -> None:
    """verify-full builds a context from sslrootcert that checks the chain and the host."""
    from tests.pki import make_pki

    pki = make_pki(tmp_path)
    base = "postgresql+asyncpg://u@db/rag?sslrootcert=" + str(pki.ca)
    _, full = _asyncpg_tls(make_url(base + "&sslmode=verify-full&sslnegotiation=direct"))
    context = full["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert full["direct_tls"] is True
    _, ca_only = _asyncpg_tls(make_url(base + "&sslmode=verify-ca"))
    assert ca_only["ssl"].verify_mode == ssl.CERT_REQUIRED and not ca_only["ssl"].check_hostname
    with pytest.raises(ConfigError, match="not both"):
        _asyncpg_tls(make_url(base + "&sslmode=require&ssl=require"))
    with pytest.raises(ConfigError, match="sslmode"):
        _asyncpg_tls(make_url("postgresql+asyncpg://u@db/rag?sslmode=verify"))
