"""Kafka over real TLS (stunnel in front of Tansu) and SASL: clients, CLI and worker.

The broker advertises the TLS port, so every connection after the bootstrap one (metadata
leads clients to the advertised listener) is TLS too. The certificates come from a throwaway
CA made for the module (``tests.pki``). Misconfigurations must fail with one line naming the
setting to check and a non-zero exit, well within 15 s, never a hang or a traceback.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ragstream import devstack
from ragstream.devstack import Service, free_port
from streams.client import SearchClient
from streams.connection import aiokafka_kwargs, check_connection
from streams.errors import ConfigError
from streams.settings import KafkaSettings
from streams.topics import create_topic, ensure_topics
from tests.integration.harness import ROOT, produce, read_until
from tests.pki import Pki, make_pki
from tests.tls_proxies import start_stunnel

_DEADLINE_S = 15.0
"""The issue's bound: a misconfiguration is reported within this long, never a hang."""


@dataclass
class TlsBroker:
    """A Tansu broker reachable only through a TLS terminator it advertises."""

    kafka: Service
    tls: Service

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.tls.port}"


def _tls_broker(root: Path, pki: Pki, *, client_ca: Path | None = None) -> TlsBroker:
    port = free_port()
    kafka = devstack.start_kafka(data_dir=root / "kafka", advertised_port=port)
    try:
        tls = start_stunnel(
            backend_port=kafka.port,
            cert_pem=pki.server_pem,
            data_dir=root / "stunnel",
            client_ca=client_ca,
            port=port,
        )
    except BaseException:
        kafka.stop()
        raise
    return TlsBroker(kafka=kafka, tls=tls)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA with good and bad server certificates and a client certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsBroker]:
    """Tansu behind stunnel (server certificate for 127.0.0.1 and localhost)."""
    broker = _tls_broker(tmp_path_factory.mktemp("tls-broker"), pki)
    yield broker
    broker.tls.stop()
    broker.kafka.stop()


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsBroker]:
    """Tansu behind stunnel requiring a client certificate signed by the test CA."""
    broker = _tls_broker(tmp_path_factory.mktemp("mtls-broker"), pki, client_ca=pki.ca)
    yield broker
    broker.tls.stop()
    broker.kafka.stop()


@pytest.fixture(scope="module")
def bad_certs(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, tls_broker: TlsBroker
) -> Iterator[dict[str, Service]]:
    """TLS terminators in front of the same broker with an expired and a wrong-host cert."""
    root = tmp_path_factory.mktemp("bad-certs")
    out: dict[str, Service] = {}
    try:
        for name, pem in (("expired", pki.expired_pem), ("wrong-host", pki.wrong_host_pem)):
            out[name] = start_stunnel(
                backend_port=tls_broker.kafka.port, cert_pem=pem, data_dir=root, name=name
            )
        yield out
    finally:
        for service in out.values():
            service.stop()


def _ssl_env(bootstrap: str, pki: Pki, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CAFILE": str(pki.ca),
        **extra,
    }


def _settings(env: dict[str, str], prefix: str = "ragstream") -> KafkaSettings:
    return KafkaSettings.model_validate(
        {k.removeprefix("KAFKA_").lower(): v for k, v in env.items()}
        | {"RAGSTREAM_TOPIC_PREFIX": prefix}
    )


async def test_clients_work_over_tls_with_a_ca_file(
    tls_broker: TlsBroker, pki: Pki, topic_prefix: str
) -> None:
    """Topic admin, producer, consumer and the request-reply client all connect over TLS."""
    kafka = _settings(_ssl_env(tls_broker.bootstrap, pki), topic_prefix)
    topics = await ensure_topics(kafka)
    await produce(kafka, topics.dead_letters, value=b"over tls")
    records = await read_until(kafka, topics.dead_letters, lambda rs: len(rs) >= 1, timeout_s=30)
    assert [r.value for r in records] == [b"over tls"]
    async with SearchClient(kafka) as client:  # creates, reads and deletes its reply topic
        assert client._channel.reply_topic.startswith(f"{topic_prefix}.replies.")
    plain = KafkaSettings(bootstrap_servers=tls_broker.bootstrap)
    with pytest.raises(ConfigError, match="KAFKA_SECURITY_PROTOCOL"):
        await check_connection(plain)


async def test_a_pre_created_reply_topic_is_read_from_its_end_and_kept(
    tls_broker: TlsBroker, pki: Pki, topic_prefix: str
) -> None:
    """A client that may not create topics uses a shared reply topic: no create, no delete."""
    kafka = _settings(_ssl_env(tls_broker.bootstrap, pki), topic_prefix)
    shared = f"{topic_prefix}.replies.team-a"
    await create_topic(kafka, shared, partitions=2)
    await produce(kafka, shared, value=b"old", headers=[("correlation-id", b"old")])
    async with SearchClient(kafka, reply_topic=shared) as client:
        channel = client._channel
        stale, fresh = channel.expect("old"), channel.expect("new")
        await produce(kafka, shared, value=b"new", headers=[("correlation-id", b"new")])
        record = await asyncio.wait_for(fresh, 30)
        assert record.value == b"new" and not stale.done()  # read from the end only
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(kafka))
    await admin.start()
    try:
        assert shared in await admin.list_topics()  # not deleted on close
    finally:
        await admin.close()


async def test_mutual_tls_needs_the_client_certificate(
    mtls_broker: TlsBroker, pki: Pki, topic_prefix: str
) -> None:
    """With a client certificate the broker accepts the client; without it, a clear error."""
    env = _ssl_env(
        mtls_broker.bootstrap,
        pki,
        KAFKA_SSL_CERTFILE=str(pki.client_cert),
        KAFKA_SSL_KEYFILE=str(pki.client_key),
        KAFKA_SSL_KEY_PASSWORD=pki.client_key_password,
    )
    kafka = _settings(env, topic_prefix)
    topics = await ensure_topics(kafka)
    await produce(kafka, topics.dead_letters, value=b"mtls")
    records = await read_until(kafka, topics.dead_letters, lambda rs: len(rs) >= 1, timeout_s=30)
    assert records[0].value == b"mtls"
    with pytest.raises(ConfigError, match="KAFKA_SSL_CERTFILE"):
        await check_connection(_settings(_ssl_env(mtls_broker.bootstrap, pki)))


def _run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ragstream ...``; a hang fails the test (TimeoutExpired).

    The guard is generous: on a loaded 2-core machine the interpreter alone may take 10 s to
    start. The 15 s bound itself is asserted in-process, on ``check_connection``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    return subprocess.run(
        [sys.executable, "-m", "ragstream.cli", *args],
        env={**clean, "RAGSTREAM_AUTH": "disabled", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _cases(tls: TlsBroker, bad: dict[str, Service], pki: Pki) -> dict[str, tuple[dict, str]]:
    return {
        "wrong-ca": (
            _ssl_env(tls.bootstrap, pki, KAFKA_SSL_CAFILE=str(pki.other_ca)),
            "KAFKA_SSL_CAFILE",
        ),
        "expired": (_ssl_env(f"127.0.0.1:{bad['expired'].port}", pki), "expired"),
        "wrong-host": (
            _ssl_env(f"127.0.0.1:{bad['wrong-host'].port}", pki),
            "KAFKA_SSL_CHECK_HOSTNAME",
        ),
        "plaintext-to-tls": (
            {"KAFKA_BOOTSTRAP_SERVERS": tls.bootstrap},
            "KAFKA_SECURITY_PROTOCOL",
        ),
        "tls-to-plaintext": (
            _ssl_env(f"127.0.0.1:{tls.kafka.port}", pki),
            "KAFKA_SECURITY_PROTOCOL",
        ),
    }


_CASES = ["wrong-ca", "expired", "wrong-host", "plaintext-to-tls", "tls-to-plaintext"]
_SEARCH = ("search", "anything")


@pytest.mark.parametrize("case", [pytest.param(c, id=c) for c in _CASES])
async def test_misconfiguration_is_reported_within_the_deadline(
    case: str, tls_broker: TlsBroker, bad_certs: dict[str, Service], pki: Pki
) -> None:
    """Each bad TLS setup is a ConfigError naming the setting, well within 15 s (no hang)."""
    env, setting = _cases(tls_broker, bad_certs, pki)[case]
    with pytest.raises(ConfigError) as raised:
        await asyncio.wait_for(check_connection(_settings(env)), _DEADLINE_S)
    assert setting in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("case", "command"),
    [pytest.param(c, _SEARCH, id=f"search-{c}") for c in _CASES]
    + [
        pytest.param(c, (name,), id=f"{name}-{c}")
        for name in ("breakers", "worker")
        for c in ("wrong-ca", "tls-to-plaintext")
    ],
)
def test_misconfiguration_is_one_clear_line_and_a_failed_exit(
    case: str,
    command: tuple[str, ...],
    tls_broker: TlsBroker,
    bad_certs: dict[str, Service],
    pki: Pki,
    tmp_path: Path,
) -> None:
    """Each bad TLS setup makes the CLI and the worker exit non-zero with one line, no trace."""
    env, setting = _cases(tls_broker, bad_certs, pki)[case]
    env = {**env, "RAGSTREAM_DATA_DIR": str(tmp_path), "CHROMA_PATH": str(tmp_path / "chroma")}
    done = _run_cli(env, *command)
    assert done.returncode not in (0, None), done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in lines if line.startswith(f"ragstream {command[0]}: error:")]
    assert len(errors) == 1, done.stderr
    assert setting in errors[0], errors[0]


async def test_sasl_scram_wrong_credentials_fail_clearly(tmp_path: Path) -> None:
    """Against Tansu with authentication on, a SCRAM login it refuses is one clear error."""
    with devstack.start_kafka(data_dir=tmp_path, authentication=True) as broker:
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="ragstream",
            sasl_password="not-the-password",
        )
        with pytest.raises(ConfigError, match="KAFKA_SASL_PASSWORD") as raised:
            await asyncio.wait_for(check_connection(kafka), _DEADLINE_S)
        assert "not-the-password" not in str(raised.value)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "KAFKA_SASL_USERNAME": "ragstream",
            "KAFKA_SASL_PASSWORD": "not-the-password",
            "RAGSTREAM_DATA_DIR": str(tmp_path),
        }
        done = await asyncio.to_thread(_run_cli, env, "search", "anything")
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "KAFKA_SASL_PASSWORD" in done.stderr
        assert "not-the-password" not in done.stderr + done.stdout
