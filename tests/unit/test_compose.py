"""docker-compose.yml cannot run here (no Docker engine): check its shape against the settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from streams.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_env_names() -> set[str]:
    """Every environment variable ``Settings()`` reads, from the settings classes themselves."""
    names = set()
    for section in [Settings, *Settings._sections()]:
        for field, info in section.model_fields.items():
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings):
                continue  # a section: its own fields are read, not a variable of its name
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names |= {choice for choice in alias.choices if isinstance(choice, str)}
            names.add(env_name(section, field))
    return names


def test_the_names_are_the_ones_settings_reads(monkeypatch) -> None:
    """Each derived name really changes its setting, and a made-up one is not among them."""
    names = settings_env_names()
    assert "RAGSTREAM_NOT_A_SETTING" not in names
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "DB_POOL_SIZE", "JWT_SECRET_KEY"} <= names
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    assert Settings().database.pool_size == 7


def test_services_and_ports() -> None:
    """The production stack has every service the worker needs, on their usual ports."""
    services = _compose()["services"]
    assert {"kafka", "elasticsearch", "postgres", "chroma", "chroma-gateway", "worker"} <= set(
        services
    )
    assert "127.0.0.1:9092:9092" in services["kafka"]["ports"]
    assert "127.0.0.1:9200:9200" in services["elasticsearch"]["ports"]
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
    read = settings_env_names()
    assert set(env) <= read, set(env) - read


def test_no_default_secrets() -> None:
    """Secrets must be supplied (``${VAR:?...}``), never defaulted in the file."""
    text = (ROOT / "docker-compose.yml").read_text()
    secrets = (
        "POSTGRES_PASSWORD",
        "JWT_SECRET_KEY",
        "KAFKA_SASL_PASSWORD",
        "ELASTIC_PASSWORD",
        "CHROMA_AUTH_TOKEN",
    )
    for name in secrets:
        assert re.search(rf"\$\{{{name}:\?", text), name
        assert not re.search(rf"\$\{{{name}:-", text), name


def test_elasticsearch_client_major_matches_the_image() -> None:
    """A 9.x client sends compatible-with=9, which an 8.x server refuses: pin the same major."""
    image = _compose()["services"]["elasticsearch"]["image"]
    major = image.rsplit(":", 1)[1].split(".")[0]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(rf'"elasticsearch>={major}\.\d+,<{int(major) + 1}"', pyproject)


def test_every_published_port_is_bound_to_loopback() -> None:
    """No service listens on every interface of the host: each port is ``127.0.0.1:...``."""
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_kafka_requires_sasl_and_keeps_its_data() -> None:
    """Every Kafka listener but the unpublished controller is SASL; data is on the volume."""
    kafka = _compose()["services"]["kafka"]
    env = kafka["environment"]
    protocols = dict(
        pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert protocols.pop("CONTROLLER") == "PLAINTEXT"
    assert set(protocols.values()) <= {"SASL_PLAINTEXT", "SASL_SSL"}, protocols
    assert "CONTROLLER" not in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "kafka-data:/var/lib/kafka/data" in kafka["volumes"]
    assert env["CLUSTER_ID"], "a fixed cluster id, or the volume is reformatted"
    worker = _compose()["services"]["worker"]["environment"]
    assert worker["KAFKA_SECURITY_PROTOCOL"].startswith("SASL_")
    assert worker["KAFKA_SASL_MECHANISM"] in env["KAFKA_SASL_ENABLED_MECHANISMS"].split(",")


def test_elasticsearch_security_is_on_and_chroma_needs_a_token() -> None:
    """Elasticsearch requires a password; Chroma is reachable only through the token gateway."""
    services = _compose()["services"]
    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"
    assert "ports" not in services["chroma"]
    assert "healthcheck" in services["chroma"]
    gateway = (ROOT / "deploy" / "chroma-gateway.conf.template").read_text()
    assert '"Bearer ${CHROMA_AUTH_TOKEN}" 1;' in gateway and "return 401" in gateway
    assert services["worker"]["environment"]["CHROMA_URL"] == "http://chroma-gateway:8000"


def test_restart_policies_and_env_example() -> None:
    """Every long-running service restarts; .env.example lists every required variable."""
    text = (ROOT / "docker-compose.yml").read_text()
    for name, service in _compose()["services"].items():
        assert service.get("restart") == "unless-stopped", name
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", example, flags=re.M))
    assert required <= listed, required - listed
