"""Kafka connection arguments, built in one place from ``KafkaSettings``.

Every Kafka client ragstream makes takes its security from here: the worker's Faust app
(``faust_credentials``), its topic admin, every ``SearchClient``/``IngestClient``, the CLI
commands and the benchmark tools (``aiokafka_kwargs``). ``check_connection`` opens one
connection the way those clients will (TLS handshake, SASL, an ApiVersions round trip) with a
deadline, so a misconfiguration is one clear line naming the setting to check, within
seconds, instead of aiokafka's "Unable to bootstrap" after its 40 s request timeout.
Messages never contain a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from streams.errors import ConfigError, DependencyError
from streams.settings import KafkaSettings

__all__ = [
    "aiokafka_kwargs",
    "check_connection",
    "describe_kafka_error",
    "faust_credentials",
    "ssl_context",
]

CHECK_TIMEOUT_S = 8.0
"""How long ``check_connection`` waits for one broker to answer."""


class _StaticToken(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """OAUTHBEARER with a token read once from ``KAFKA_SASL_OAUTHBEARER_TOKEN``(``_FILE``)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "_StaticToken(***)"


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of ``SSL``/``SASL_SSL`` (None otherwise); a bad file is a ConfigError."""
    if not kafka.uses_ssl:
        return None
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"KAFKA_SSL_CAFILE: cannot load {kafka.ssl_cafile}: {_reason(exc)}"
        ) from None
    if kafka.ssl_certfile:
        password = kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None
        try:
            context.load_cert_chain(
                str(kafka.ssl_certfile),
                str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
                password=password,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE: cannot load {kafka.ssl_certfile}: "
                f"{_reason(exc)} (an encrypted key needs KAFKA_SSL_KEY_PASSWORD)"
            ) from None
    context.check_hostname = kafka.ssl_check_hostname
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        return str(reason or type(exc).__name__)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def aiokafka_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for every aiokafka client: servers, protocol, TLS, SASL."""
    out: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    context = ssl_context(kafka)
    if context is not None:
        out["ssl_context"] = context
    if kafka.uses_sasl:
        out["sasl_mechanism"] = kafka.sasl_mechanism
        if kafka.sasl_mechanism == "OAUTHBEARER":
            assert kafka.sasl_oauthbearer_token is not None  # the settings check it
            token = kafka.sasl_oauthbearer_token.get_secret_value()
            out["sasl_oauth_token_provider"] = _StaticToken(token)
        else:
            assert kafka.sasl_password is not None  # the settings check it
            out["sasl_plain_username"] = kafka.sasl_username
            out["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    return out


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust's ``broker_credentials`` for the same settings (None for ``PLAINTEXT``)."""
    import faust

    context = ssl_context(kafka)
    if not kafka.uses_sasl:
        return faust.SSLCredentials(context) if context is not None else None
    if kafka.sasl_mechanism == "OAUTHBEARER":
        assert kafka.sasl_oauthbearer_token is not None
        provider = _StaticToken(kafka.sasl_oauthbearer_token.get_secret_value())
        return faust.OAuthCredentials(oauth_cb=provider, ssl_context=context)
    assert kafka.sasl_password is not None
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value(),
        ssl_context=context,
        mechanism=kafka.sasl_mechanism,
    )


def _first_server(kafka: KafkaSettings) -> tuple[str, int]:
    server = kafka.bootstrap_servers.split(",")[0].strip()
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"KAFKA_BOOTSTRAP_SERVERS: {server!r} is not host:port")
    return host.strip("[]"), int(port)


def describe_kafka_error(exc: BaseException, kafka: KafkaSettings) -> str:
    """One line: what went wrong connecting to Kafka and which setting to check."""
    where = kafka.bootstrap_servers
    protocol = kafka.security_protocol
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or _reason(exc)
        if "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
            hint = (
                "check KAFKA_BOOTSTRAP_SERVERS names a host the certificate is for "
                "(KAFKA_SSL_CHECK_HOSTNAME)"
            )
        elif "expired" in detail.lower() or "not yet valid" in detail.lower():
            hint = "the broker must renew its certificate"
        else:
            hint = "check KAFKA_SSL_CAFILE (the CA that signed the broker's certificate)"
        return f"TLS to Kafka at {where} failed: {detail.rstrip('.')}: {hint}"
    if isinstance(exc, ssl.SSLError):
        reason = _reason(exc)
        if "CERTIFICATE_REQUIRED" in reason.upper() or "ALERT" in reason.upper():
            hint = (
                "the broker refused this client: check KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE "
                "(mutual TLS)"
            )
        else:
            hint = f"is {where} a TLS listener? check KAFKA_SECURITY_PROTOCOL ({protocol})"
        return f"TLS to Kafka at {where} failed: {reason}: {hint}"
    if isinstance(exc, TimeoutError):
        if kafka.uses_ssl:
            hint = f"is it a TLS listener? check KAFKA_SECURITY_PROTOCOL ({protocol})"
        else:
            hint = "check KAFKA_BOOTSTRAP_SERVERS"
        return f"Kafka at {where} did not answer within {CHECK_TIMEOUT_S:g}s: {hint}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, KafkaError) and "Authentication" in type(exc).__name__:
        return (
            f"Kafka at {where} refused the SASL credentials ({text}): check "
            "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
        )
    if isinstance(exc, KafkaError) and "UnsupportedSaslMechanism" in type(exc).__name__:
        return f"Kafka at {where}: {text}: check KAFKA_SASL_MECHANISM"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to Kafka at {where}: connection refused"
    if isinstance(exc, (KafkaError, ConnectionError, OSError)):
        if kafka.uses_ssl:
            hint = "check KAFKA_SSL_CERTFILE (mutual TLS) and KAFKA_SECURITY_PROTOCOL"
        elif kafka.uses_sasl:
            hint = "check KAFKA_SECURITY_PROTOCOL and the KAFKA_SASL_* settings"
        else:
            hint = "is it a TLS or SASL listener? check KAFKA_SECURITY_PROTOCOL"
        return f"Kafka at {where} closed the connection ({text}): {hint}"
    # SCRAM with a wrong password or unknown user: aiokafka fails parsing the server's error.
    if kafka.uses_sasl and isinstance(exc, (KeyError, ValueError)):
        return (
            f"Kafka at {where} refused the SASL {kafka.sasl_mechanism} login: check "
            "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"
        )
    return f"cannot connect to Kafka at {where}: {type(exc).__name__}: {text}"


def _tls_handshake(host: str, port: int, context: ssl.SSLContext, timeout_s: float) -> None:
    """A blocking TLS handshake with a hard timeout (run in a thread).

    asyncio cannot abandon a TLS handshake promptly: cancelling ``create_connection`` closes
    the half-open TLS transport gracefully, which waits up to ``ssl_shutdown_timeout`` (30 s)
    for a peer that speaks no TLS. A socket timeout has no such wait.
    """
    with socket.create_connection((host, port), timeout=timeout_s) as raw:
        raw.settimeout(timeout_s)
        with context.wrap_socket(raw, server_hostname=host):
            pass


async def check_connection(kafka: KafkaSettings, *, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """One connection to the first bootstrap server as the clients make it, or a clear error.

    Raises ``ConfigError`` for what a setting must fix (certificates, TLS vs plaintext, SASL
    credentials) and ``DependencyError`` for a broker that is down or unreachable.
    """
    host, port = _first_server(kafka)
    kwargs = aiokafka_kwargs(kafka)
    kwargs.pop("bootstrap_servers")
    conn = None
    try:
        context = kwargs.get("ssl_context")
        if context is not None:
            await asyncio.to_thread(_tls_handshake, host, port, context, timeout_s)
        async with asyncio.timeout(timeout_s):
            conn = await create_conn(host, port, request_timeout_ms=int(timeout_s * 1000), **kwargs)
    except (ConnectionRefusedError, OSError) as exc:
        if isinstance(exc, ConnectionRefusedError) or (
            not isinstance(exc, ssl.SSLError) and exc.errno is not None
        ):
            raise DependencyError(describe_kafka_error(exc, kafka)) from exc
        raise ConfigError(describe_kafka_error(exc, kafka)) from exc
    except (KafkaError, TimeoutError, KeyError, ValueError) as exc:
        raise ConfigError(describe_kafka_error(exc, kafka)) from exc
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
