"""The Kafka connection arguments every client gets, built once from ``KafkaSettings``."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from streams.connection import (
    aiokafka_kwargs,
    describe_kafka_error,
    faust_credentials,
    ssl_context,
)
from streams.errors import ConfigError
from streams.settings import KafkaSettings
from streams.settings_errors import describe_settings_error
from tests.pki import Pki, make_pki

_SECRET = "s3cr3t-Pa55"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA and client certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def _kafka(**kwargs: object) -> KafkaSettings:
    return KafkaSettings.model_validate({"bootstrap_servers": "b1:9093,b2:9093", **kwargs})


def test_plaintext_has_no_tls_and_no_sasl() -> None:
    """The default is what it always was: plaintext, no credentials, no Faust credentials."""
    kafka = _kafka()
    assert aiokafka_kwargs(kafka) == {
        "bootstrap_servers": "b1:9093,b2:9093",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(kafka) is None


def test_ssl_with_ca_and_client_certificate(pki: Pki) -> None:
    """SSL loads the CA and the (encrypted) client key and verifies host names by default."""
    kafka = _kafka(
        security_protocol="SSL",
        ssl_cafile=pki.ca,
        ssl_certfile=pki.client_cert,
        ssl_keyfile=pki.client_key,
        ssl_key_password=pki.client_key_password,
    )
    kwargs = aiokafka_kwargs(kafka)
    context = kwargs["ssl_context"]
    assert kwargs["security_protocol"] == "SSL"
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert "sasl_mechanism" not in kwargs
    creds = faust_credentials(kafka)
    assert isinstance(creds, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"
    unchecked = _kafka(security_protocol="SSL", ssl_cafile=pki.ca, ssl_check_hostname=False)
    assert not aiokafka_kwargs(unchecked)["ssl_context"].check_hostname


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        pytest.param("SASL_SSL", "PLAIN", id="confluent"),
        pytest.param("SASL_SSL", "SCRAM-SHA-512", id="msk"),
        pytest.param("SASL_SSL", "SCRAM-SHA-256", id="redpanda"),
        pytest.param("SASL_PLAINTEXT", "SCRAM-SHA-256", id="plaintext"),
    ],
)
def test_sasl_the_worker_and_the_clients_get_the_same_arguments(
    protocol: str, mechanism: str
) -> None:
    """Faust's broker credentials turn into exactly the aiokafka arguments clients get."""
    kafka = _kafka(
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username="ragstream",
        sasl_password=_SECRET,
    )
    kwargs = aiokafka_kwargs(kafka)
    faust_kwargs = credentials_to_aiokafka_auth(faust_credentials(kafka))
    for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username"):
        assert faust_kwargs[key] == kwargs[key], key
    assert faust_kwargs["sasl_plain_password"] == kwargs["sasl_plain_password"] == _SECRET
    assert ("ssl_context" in kwargs) == (protocol == "SASL_SSL")
    assert (faust_kwargs["ssl_context"] is not None) == (protocol == "SASL_SSL")
    assert _SECRET not in repr(kafka) + str(kafka) + repr(faust_credentials(kafka))


async def test_oauthbearer_static_token() -> None:
    """OAUTHBEARER hands aiokafka a provider of the configured token, never printed."""
    kafka = _kafka(
        security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", sasl_oauthbearer_token=_SECRET
    )
    provider = aiokafka_kwargs(kafka)["sasl_oauth_token_provider"]
    assert await provider.token() == _SECRET
    assert _SECRET not in repr(provider)
    assert isinstance(faust_credentials(kafka), faust.OAuthCredentials)


@pytest.mark.parametrize(
    ("values", "names"),
    [
        pytest.param(
            {"ssl_cafile": "/ca.pem"}, ["KAFKA_SSL_CAFILE", "KAFKA_SECURITY_PROTOCOL"], id="ca"
        ),
        pytest.param(
            {"security_protocol": "SASL_SSL"}, ["KAFKA_SASL_MECHANISM"], id="no-mechanism"
        ),
        pytest.param(
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"},
            ["KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"],
            id="no-password",
        ),
        pytest.param(
            {"sasl_username": "u", "sasl_password": "p"},
            ["KAFKA_SECURITY_PROTOCOL"],
            id="sasl-on-plaintext",
        ),
        pytest.param(
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            ["KAFKA_SASL_OAUTHBEARER_TOKEN"],
            id="no-token",
        ),
        pytest.param({"security_protocol": "TLS"}, ["KAFKA_SECURITY_PROTOCOL"], id="typo"),
    ],
)
def test_inconsistent_security_settings_name_the_variables(
    values: dict[str, str], names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A setting that would silently be ignored, or a missing one, is refused by name."""
    for key, value in values.items():
        monkeypatch.setenv(f"KAFKA_{key.upper()}", value)
    with pytest.raises(ValidationError) as raised:
        KafkaSettings()
    message = describe_settings_error(raised.value)
    for name in names:
        assert name in message, message


def test_unreadable_tls_files_are_config_errors(pki: Pki, tmp_path: Path) -> None:
    """A missing CA file or an encrypted key without its password names the setting."""
    with pytest.raises(ConfigError, match="KAFKA_SSL_CAFILE"):
        ssl_context(_kafka(security_protocol="SSL", ssl_cafile=tmp_path / "missing.pem"))
    no_password = _kafka(
        security_protocol="SSL", ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key
    )
    with pytest.raises(ConfigError, match="KAFKA_SSL_KEY_PASSWORD"):
        ssl_context(no_password)


def test_error_descriptions_name_a_setting_and_no_secret() -> None:
    """Connection failures read as one line with the setting to check, without the password."""
    kafka = _kafka(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password=_SECRET,
    )
    cases = {
        KeyError("v"): "KAFKA_SASL_PASSWORD",
        ConnectionResetError(104, "reset"): "KAFKA_SECURITY_PROTOCOL",
        TimeoutError(): "KAFKA_SECURITY_PROTOCOL",
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"): "TLS listener",
    }
    for exc, expected in cases.items():
        text = describe_kafka_error(exc, kafka)
        assert expected in text and "\n" not in text and _SECRET not in text, text


def test_a_refused_setting_never_echoes_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The validation error of a section holding a password does not print the password."""
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", _SECRET)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")  # but no mechanism: refused
    with pytest.raises(ValidationError) as raised:
        KafkaSettings()
    assert _SECRET not in str(raised.value) + repr(raised.value)
    assert _SECRET not in describe_settings_error(raised.value)


def _kafka_clients_built_by_hand() -> list[str]:
    """Kafka client constructions in the packages that bypass ``aiokafka_kwargs``."""
    import ast

    root = Path(__file__).resolve().parents[2]
    clients = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient"}
    found = []
    for path in sorted(
        [*root.joinpath("ragstream").rglob("*.py"), *root.joinpath("streams").rglob("*.py")]
    ):
        if path.name == "devstack.py":  # probes the embedded plaintext broker it started itself
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name not in clients:
                continue
            spread = any(k.arg is None for k in node.keywords)  # **aiokafka_kwargs(...)
            by_hand = any(k.arg == "bootstrap_servers" for k in node.keywords)
            if by_hand or not spread:
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_every_kafka_client_gets_the_connection_arguments() -> None:
    """No worker, client or CLI path builds a Kafka client without the TLS/SASL arguments."""
    assert _kafka_clients_built_by_hand() == []
