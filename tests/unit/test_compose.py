"""docker-compose.yml cannot run here (no Docker engine): check its shape against the settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_ports() -> None:
    """The production stack has every service the worker needs, on their usual ports."""
    services = _compose()["services"]
    assert set(services) >= {"kafka", "elasticsearch", "postgres", "chroma", "worker"}
    assert "9092:9092" in services["kafka"]["ports"]
    assert "9200:9200" in services["elasticsearch"]["ports"]
    assert services["worker"]["build"] == "."
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper


def test_worker_environment_is_read_by_the_settings(monkeypatch) -> None:
    """Every variable the worker service sets is one Settings reads, with a valid value."""
    env = _compose()["services"]["worker"]["environment"]
    for key, value in env.items():
        value = re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "x", str(value))
        value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.env == "production"
    assert settings.kafka.bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert settings.elasticsearch.url == env["ELASTICSEARCH_URL"]
    assert settings.chroma.url == env["CHROMA_URL"]
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.database.pool_size == 20 and settings.database.max_overflow == 40
    known = {
        "RAGSTREAM_ENV",
        "KAFKA_BOOTSTRAP_SERVERS",
        "RAGSTREAM_TOPIC_PREFIX",
        "KAFKA_PARTITIONS",
        "KAFKA_FETCH_MAX_WAIT_MS",
        "ELASTICSEARCH_URL",
        "CHROMA_URL",
        "DATABASE_URL",
        "DB_POOL_SIZE",
        "DB_MAX_OVERFLOW",
        "DB_POOL_PRE_PING",
        "DB_POOL_RECYCLE",
        "EMBEDDING_PROVIDER",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "SENTRY_DSN",
        "SENTRY_ENVIRONMENT",
        "SENTRY_TRACES_SAMPLE_RATE",
        "JWT_SECRET_KEY",
        "RAGSTREAM_LOG_FORMAT",
        "RAGSTREAM_HTTP_HOST",
        "RAGSTREAM_HTTP_PORT",
    }
    assert set(env) <= known, set(env) - known


def test_no_default_secrets() -> None:
    """Secrets must be supplied (``${VAR:?...}``), never defaulted in the file."""
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("POSTGRES_PASSWORD", "JWT_SECRET_KEY"):
        assert re.search(rf"\$\{{{name}:\?", text), name
        assert not re.search(rf"\$\{{{name}:-", text), name


def test_elasticsearch_client_major_matches_the_image() -> None:
    """A 9.x client sends compatible-with=9, which an 8.x server refuses: pin the same major."""
    image = _compose()["services"]["elasticsearch"]["image"]
    major = image.rsplit(":", 1)[1].split(".")[0]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(rf'"elasticsearch>={major}\.\d+,<{int(major) + 1}"', pyproject)
