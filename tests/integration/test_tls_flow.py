"""Authenticated TLS to every store, and the whole flow once over TLS.

nginx terminates TLS in front of noida-db (the Elasticsearch API) and the Chroma server and
checks the credential before proxying: noida-db checks no credential at all and the Chroma
1.x server does not enforce token auth, so nginx plays the secured server (a wrong password,
API key or token gets 401, as from Elasticsearch with security on or a Chroma auth proxy).
Kafka is Tansu behind stunnel. The certificates come from a throwaway CA (``tests.pki``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from ragstream import devstack
from ragstream.devstack import Service, free_port
from schemas.document import DocumentUpsert
from services.resilience import Breaker, Guarded
from stores.chroma import ChromaVectorStore
from stores.elastic import ElasticKeywordStore
from streams.client import IngestClient, SearchClient
from streams.errors import DependencyConfigError
from streams.settings import KafkaSettings
from tests.integration.harness import ROOT, WorkerProcess, isolated_env
from tests.pki import Pki, make_pki
from tests.tls_proxies import start_nginx, start_stunnel

_ES_USER, _ES_PASSWORD = "elastic", "es-pass-7f3a"
_ES_API_KEY = base64.b64encode(b"key-id:key-secret-91c2").decode()
_CHROMA_TOKEN = "chroma-token-5b1e"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class SecureStack:
    """TLS endpoints in front of the session's services, and the CA that signed them."""

    pki: Pki
    kafka_bootstrap: str
    elasticsearch_url: str
    chroma_url: str
    elasticsearch_proxy: Service


@pytest.fixture(scope="module")
def secure(
    tmp_path_factory: pytest.TempPathFactory,
    elasticsearch_service: Service,
    chroma_service: Service,
) -> Iterator[SecureStack]:
    """Tansu behind stunnel; noida-db and Chroma behind nginx checking credentials."""
    root = tmp_path_factory.mktemp("secure-stack")
    pki = make_pki(root / "pki")
    started: list[Service] = []
    try:
        tls_port = free_port()
        kafka = devstack.start_kafka(data_dir=root / "kafka", advertised_port=tls_port)
        started.append(kafka)
        started.append(
            start_stunnel(
                backend_port=kafka.port, cert_pem=pki.server_pem, data_dir=root, port=tls_port
            )
        )
        es = start_nginx(
            backend_port=elasticsearch_service.port,
            cert=pki.server_cert,
            key=pki.server_key,
            data_dir=root / "nginx-es",
            allowed_authorization=[_basic(_ES_USER, _ES_PASSWORD), f"ApiKey {_ES_API_KEY}"],
            name="nginx-es",
        )
        started.append(es)
        chroma = start_nginx(
            backend_port=chroma_service.port,
            cert=pki.server_cert,
            key=pki.server_key,
            data_dir=root / "nginx-chroma",
            allowed_authorization=[f"Bearer {_CHROMA_TOKEN}"],
            name="nginx-chroma",
        )
        started.append(chroma)
        yield SecureStack(
            pki=pki,
            kafka_bootstrap=f"127.0.0.1:{tls_port}",
            elasticsearch_url=f"https://localhost:{es.port}",
            chroma_url=f"https://localhost:{chroma.port}",
            elasticsearch_proxy=es,
        )
    finally:
        for service in reversed(started):
            service.stop()


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param({"username": _ES_USER, "password": _ES_PASSWORD}, id="basic-auth"),
        pytest.param({"api_key": _ES_API_KEY}, id="api-key"),
    ],
)
async def test_elasticsearch_over_tls_with_credentials(
    secure: SecureStack, credential: dict[str, str], topic_prefix: str
) -> None:
    """With the CA and a valid credential the keyword store works over HTTPS."""
    store = ElasticKeywordStore(
        url=secure.elasticsearch_url,
        index=f"{topic_prefix}-chunks",
        refresh=True,
        ca_certs=secure.pki.ca,
        **credential,  # type: ignore[arg-type]
    )
    try:
        await store.start()  # creates the index through the proxy
        assert await store.count("acme") == 0
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        pytest.param(
            {"username": _ES_USER, "password": "wrong"}, "ELASTICSEARCH_PASSWORD", id="password"
        ),
        pytest.param({"api_key": "bm90LWEta2V5"}, "ELASTICSEARCH_API_KEY", id="api-key"),
        pytest.param(
            {"username": _ES_USER, "password": _ES_PASSWORD, "ca": "other"},
            "ELASTICSEARCH_CA_CERTS",
            id="wrong-ca",
        ),
    ],
)
async def test_elasticsearch_wrong_credential_or_ca_is_a_config_error(
    secure: SecureStack, options: dict[str, str], setting: str
) -> None:
    """A 401 or an untrusted certificate is DependencyConfigError, and no breaker opens."""
    ca = secure.pki.other_ca if options.pop("ca", None) else secure.pki.ca
    store = ElasticKeywordStore(
        url=secure.elasticsearch_url,
        index="never-created",
        ca_certs=ca,
        **options,  # type: ignore[arg-type]
    )
    breaker = Breaker("elasticsearch", fail_max=2, reset_timeout_s=60, call_timeout_s=10)
    guarded = Guarded(store, breaker)
    try:
        for _ in range(3):
            with pytest.raises(DependencyConfigError, match=setting) as raised:
                await guarded.start()
            assert "wrong" not in str(raised.value)
        assert breaker.cb.current_state == "closed"
    finally:
        await store.aclose()


async def test_chroma_token_auth_over_tls(secure: SecureStack, topic_prefix: str) -> None:
    """The right token works over HTTPS; a wrong one is a config error that opens no breaker."""
    good = ChromaVectorStore(
        collection=f"{topic_prefix}-good",
        url=secure.chroma_url,
        auth_token=_CHROMA_TOKEN,
        ca_certs=secure.pki.ca,
    )
    try:
        await good.start()
    finally:
        await good.aclose()
    bad = ChromaVectorStore(
        collection=f"{topic_prefix}-bad",
        url=secure.chroma_url,
        auth_token="not-the-token",
        ca_certs=secure.pki.ca,
    )
    breaker = Breaker("vectordb", fail_max=2, reset_timeout_s=60, call_timeout_s=30)
    try:
        for _ in range(3):
            with pytest.raises(DependencyConfigError, match="CHROMA_AUTH_TOKEN") as raised:
                await Guarded(bad, breaker).start()
            assert "not-the-token" not in str(raised.value)
        assert breaker.cb.current_state == "closed"
    finally:
        await bad.aclose()


def _worker_env(secure: SecureStack, data_dir: Path, **overrides: str) -> dict[str, str]:
    env = isolated_env(
        kafka_bootstrap=secure.kafka_bootstrap,
        elasticsearch_url=secure.elasticsearch_url,
        data_dir=data_dir,
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CAFILE=str(secure.pki.ca),
        ELASTICSEARCH_USERNAME=_ES_USER,
        ELASTICSEARCH_PASSWORD=_ES_PASSWORD,
        ELASTICSEARCH_CA_CERTS=str(secure.pki.ca),
        CHROMA_URL=secure.chroma_url,
        CHROMA_AUTH_TOKEN=_CHROMA_TOKEN,
        CHROMA_CA_CERTS=str(secure.pki.ca),
        BREAKER_ELASTICSEARCH_FAIL_MAX="1",
        BREAKER_ELASTICSEARCH_RESET_TIMEOUT_S="300",
    )
    return env | overrides


def _kafka(env: dict[str, str]) -> KafkaSettings:
    return KafkaSettings.model_validate(
        {
            "bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "security_protocol": "SSL",
            "ssl_cafile": env["KAFKA_SSL_CAFILE"],
            "RAGSTREAM_TOPIC_PREFIX": env["RAGSTREAM_TOPIC_PREFIX"],
        }
    )


@pytest_asyncio.fixture(scope="module")
async def tls_worker(
    secure: SecureStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """A worker process whose every connection is TLS (Kafka, Elasticsearch, Chroma)."""
    data_dir = tmp_path_factory.mktemp("tls-worker")
    env = _worker_env(secure, data_dir)
    worker = WorkerProcess(env, log_path=data_dir / "worker.log").start()
    try:
        await worker.wait_ready(_kafka(env), tenant="probe")
        yield env
    finally:
        worker.stop()


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ELASTIC"))}
    return subprocess.run(
        [sys.executable, "-m", "ragstream.cli", *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


async def test_ingest_search_and_breakers_over_tls(
    secure: SecureStack, tls_worker: dict[str, str]
) -> None:
    """Ingest and search through a TLS-only worker; a breaker event reaches the CLI over TLS."""
    kafka = _kafka(tls_worker)
    async with IngestClient(kafka) as client:
        result = await client.ingest(
            DocumentUpsert(
                id="tls-doc",
                tenant="acme",
                title="Rotating keys",
                text="Rotate the signing keys every ninety days through the JWKS file.",
            )
        )
    assert result.status == "indexed", result
    async with SearchClient(kafka) as client:
        found = await client.search("rotate signing keys", tenant="acme", top_k=3)
    assert found.status == "ok" and found.hits and found.hits[0].doc_id == "tls-doc", found

    secure.elasticsearch_proxy.stop()  # Elasticsearch goes away: its breaker opens
    try:
        async with SearchClient(kafka) as client:
            degraded = await client.search("rotate", tenant="acme", mode="hybrid", timeout_s=60)
        assert degraded.status == "degraded" and degraded.degraded == ["keyword"], degraded
        deadline = time.monotonic() + 120
        while True:
            done = _cli(tls_worker, "breakers", "--json")
            assert done.returncode == 0, done.stderr
            state = json.loads(done.stdout)["breakers"]
            if state.get("elasticsearch", {}).get("open", 0) >= 1:  # the fleet summary
                break
            assert time.monotonic() < deadline, state
    finally:
        secure.elasticsearch_proxy.start()


def test_worker_with_a_wrong_chroma_token_refuses_to_start(
    secure: SecureStack, tmp_path: Path
) -> None:
    """A wrong store credential at start is one line and exit 2, not a silently held stream."""
    env = _worker_env(secure, tmp_path, CHROMA_AUTH_TOKEN="not-the-token")
    worker = WorkerProcess(env, log_path=tmp_path / "worker.log").start()
    assert worker.process is not None
    try:
        code = worker.process.wait(timeout=180)
    finally:
        worker.stop()
    log = worker.log_tail()
    assert code != 0, log
    assert "CHROMA_AUTH_TOKEN" in log and "not-the-token" not in log, log
