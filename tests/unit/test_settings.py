"""Settings: defaults, environment names, masking, validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.settings import IngestSettings, Settings


def test_defaults_are_the_embedded_dev_stack(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """With no environment the worker targets the local dev stack and a SQLite catalog."""
    monkeypatch.setenv("RAGSTREAM_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.topic("documents") == "ragstream.documents"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"
    assert settings.chroma_path == tmp_path / "chroma"
    assert settings.embedding.provider == "local"


def test_documented_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names in the README map to the right fields."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "RAGSTREAM_TOPIC_PREFIX": "prod",
        "ELASTICSEARCH_URL": "http://es:9200",
        "CHROMA_URL": "http://chroma:8000",
        "DATABASE_URL": "postgresql+asyncpg://u@db/rag",
        "DB_POOL_SIZE": "7",
        "DB_MAX_OVERFLOW": "9",
        "DB_POOL_PRE_PING": "false",
        "DB_POOL_RECYCLE": "60",
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-123",
        "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        "SENTRY_TRACES_SAMPLE_RATE": "0.5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert s.kafka.topic("documents") == "prod.documents"
    assert s.elasticsearch.url == "http://es:9200" and s.chroma.url == "http://chroma:8000"
    assert s.database_url == "postgresql+asyncpg://u@db/rag"
    assert (
        s.database.pool_size,
        s.database.max_overflow,
        s.database.pool_pre_ping,
        s.database.pool_recycle,
    ) == (7, 9, False, 60)
    assert s.embedding.provider == "openai" and s.openai.base_url == "http://127.0.0.1:1/v1"
    assert s.sentry.traces_sample_rate == 0.5
    assert s.openai.api_key is not None and s.openai.api_key.get_secret_value() == "sk-test-123"
    assert "sk-test-123" not in str(s.masked()) and "sk-test-123" not in repr(s)


def test_settings_are_frozen() -> None:
    """Nobody changes settings at run time."""
    with pytest.raises(ValidationError):
        Settings().kafka.partitions = 9  # type: ignore[misc]


def test_overlap_must_be_smaller_than_half_a_chunk() -> None:
    """An overlap that would make chunking crawl is refused at start."""
    with pytest.raises(ValidationError, match="OVERLAP"):
        IngestSettings(chunk_size=100, chunk_overlap=60)


def test_runtime_builds_each_breaker_from_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every breaker takes its own fail max, reset and call timeouts from ``BREAKER_*``."""
    from ragstream.runtime import Runtime

    monkeypatch.setenv("RAGSTREAM_AUTH", "disabled")
    monkeypatch.setenv("BREAKER_VECTORDB_FAIL_MAX", "7")
    monkeypatch.setenv("BREAKER_ELASTICSEARCH_RESET_TIMEOUT_S", "9")
    monkeypatch.setenv("BREAKER_OPENAI_CALL_TIMEOUT_S", "11")
    breakers = Runtime(Settings()).breakers
    assert set(breakers) == {"embedding", "vectordb", "elasticsearch"}
    assert breakers["vectordb"].cb.fail_max == 7
    assert breakers["elasticsearch"].cb.reset_timeout == 9
    assert breakers["embedding"].call_timeout_s == 11
    assert breakers["elasticsearch"].cb.fail_max == 3  # the documented default
