"""The error tree: every failure ragstream raises on purpose.

Stores translate their clients' exceptions into these at their boundary; agents read
``retriable`` to decide between "hold the stream and retry" and "dead-letter it", and
``code`` is what goes on the wire (ingest results, search errors, dead-letter headers).

    RagstreamError                      code            retriable
    ├── ConfigError                     config          no
    │   └── DependencyConfigError       dependency_config no
    ├── InvalidMessageError             invalid_message no
    │   ├── MalformedMessageError       malformed_json  no
    │   ├── SchemaValidationError       invalid_schema  no
    │   ├── UnsupportedSchemaError      unknown_schema  no
    │   └── PayloadTooLargeError        too_large       no
    ├── DependencyError                 unavailable     yes
    │   ├── StoreUnavailableError       store_unavailable yes
    │   ├── EmbeddingUnavailableError   embedding_unavailable yes
    │   └── BreakerOpenError            breaker_open    yes
    ├── DependencyRejectedError         dependency_rejected no
    │   ├── StoreRejectedError          store_rejected  no
    │   └── EmbeddingRejectedError      embedding_rejected no
    ├── AuthError                       auth            no
    │   ├── AuthenticationError         unauthenticated no
    │   └── AuthorizationError          forbidden       no
    ├── RequestTimeoutError             timeout         yes
    └── RemoteError                     (the worker's)  no
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

__all__ = [
    "AuthError",
    "AuthenticationError",
    "AuthorizationError",
    "BreakerOpenError",
    "ConfigError",
    "DependencyConfigError",
    "DependencyError",
    "DependencyRejectedError",
    "EmbeddingRejectedError",
    "EmbeddingUnavailableError",
    "InvalidMessageError",
    "MalformedMessageError",
    "PayloadTooLargeError",
    "RagstreamError",
    "RemoteError",
    "RequestTimeoutError",
    "SchemaValidationError",
    "StoreRejectedError",
    "StoreUnavailableError",
    "UnsupportedSchemaError",
]


class RagstreamError(Exception):
    """Root of every error ragstream raises on purpose."""

    code: str = "internal"
    retriable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(RagstreamError):
    """Settings are missing, contradictory or unsafe."""

    code = "config"


class DependencyConfigError(ConfigError):
    """An outside system refused *our* credentials or TLS (a 401/403, a certificate it or we
    do not trust): a setting must change, so retrying won't help and no breaker opens."""

    code = "dependency_config"


class InvalidMessageError(RagstreamError):
    """A message can never be processed as it is: dead-letter it."""

    code = "invalid_message"


class MalformedMessageError(InvalidMessageError):
    """The bytes are not JSON (or not a JSON object)."""

    code = "malformed_json"


class SchemaValidationError(InvalidMessageError):
    """The JSON does not match the message model (missing or wrong fields)."""

    code = "invalid_schema"


class UnsupportedSchemaError(InvalidMessageError):
    """The ``schema`` field names a message type or version we do not read."""

    code = "unknown_schema"


class PayloadTooLargeError(InvalidMessageError):
    """The message or its text is larger than the configured limit."""

    code = "too_large"


class DependencyError(RagstreamError):
    """An outside system is down or slow: wait and retry, never drop."""

    code = "unavailable"
    retriable = True


class StoreUnavailableError(DependencyError):
    """A store (Chroma, Elasticsearch, the catalog) cannot be reached or timed out."""

    code = "store_unavailable"


class EmbeddingUnavailableError(DependencyError):
    """The embedding provider cannot be reached, timed out or rate-limited us."""

    code = "embedding_unavailable"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class BreakerOpenError(DependencyError):
    """A circuit breaker refused the call without trying it."""

    code = "breaker_open"

    def __init__(
        self,
        breaker: str,
        *,
        retry_after_s: float | None = None,
        wake: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(f"circuit breaker {breaker!r} is open")
        self.breaker = breaker
        self.retry_after_s = retry_after_s
        self.wake = wake
        """Returns once the breaker admits calls again (may be before ``retry_after_s``)."""


class DependencyRejectedError(RagstreamError):
    """An outside system answered that this request is wrong (a 4xx): retrying won't help."""

    code = "dependency_rejected"


class StoreRejectedError(DependencyRejectedError):
    """A store refused the request itself (bad query, mapping conflict)."""

    code = "store_rejected"


class EmbeddingRejectedError(DependencyRejectedError):
    """The embedding provider refused the input (too long, bad model name)."""

    code = "embedding_rejected"


class AuthError(RagstreamError):
    """A message's credentials do not allow it: reject it, never retry (messages never say why
    in more detail than needed, and never contain the credential itself)."""

    code = "auth"


class AuthenticationError(AuthError):
    """No credential, or one that is malformed, forged, expired, revoked or disabled."""

    code = "unauthenticated"


class AuthorizationError(AuthError):
    """A valid credential without the scope or tenant the message needs."""

    code = "forbidden"


class RequestTimeoutError(RagstreamError):
    """A request-reply call got no reply within its timeout."""

    code = "timeout"
    retriable = True

    def __init__(
        self, message: str, *, code: str | None = None, correlation_id: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.correlation_id = correlation_id
        """The unanswered request's correlation id (to find it in the workers' logs)."""


class RemoteError(RagstreamError):
    """The worker answered a request with an error; ``code`` is the worker's code."""
