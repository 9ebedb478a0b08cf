"""How the Chroma store reads its client's exceptions: the one place they become ours.

A 401/403 or a failed TLS handshake is ``DependencyConfigError`` (our token or CA is wrong: no
retry, no breaker); a timeout, a transport error or a 429/5xx is ``StoreUnavailableError``
(retried, counted by the breaker); anything else the server refused is ``StoreRejectedError``.
Chroma's client re-raises some errors as ``ValueError(str(e))``: the cause chain is searched.
"""

from __future__ import annotations

import ssl

import chromadb
import chromadb.errors
import httpx

from streams.errors import (
    DependencyConfigError,
    RagstreamError,
    StoreRejectedError,
    StoreUnavailableError,
)

__all__ = ["translate"]

_NOT_RUNNING = "Could not connect to a Chroma server"


def translate(exc: BaseException) -> RagstreamError:
    """Map one client exception to ours (the only place this store does it)."""
    if isinstance(exc, RagstreamError):
        return exc
    tls = _ssl_cause(exc)
    if tls is not None:
        reason = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or tls
        return DependencyConfigError(
            f"TLS to chroma failed: {reason}: check CHROMA_CA_CERTS and that CHROMA_URL names "
            "the host of the server's certificate"
        )
    status = _status(exc)
    if status in (401, 403):
        return DependencyConfigError(
            f"chroma answered {status}: check CHROMA_AUTH_TOKEN (and "
            "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER)"
        )
    if _transport_cause(exc):
        # Also when Chroma's client re-raised it as ``ValueError(str(e))`` (a connection
        # reset while it checks the tenant or the user): the server is down or the network
        # dropped, not a bad request.
        return StoreUnavailableError(f"chroma unreachable or too slow: {exc!r}")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status == 429 or status >= 500:
            return StoreUnavailableError(f"chroma answered {status}")
        return StoreRejectedError(f"chroma answered {status}")
    if isinstance(exc, chromadb.errors.ChromaError):
        status = exc.code()
        message = f"chroma {exc.name()} ({status}): {exc.message()}"
        if status == 429 or status >= 500:
            return StoreUnavailableError(message)
        return StoreRejectedError(message)
    if isinstance(exc, ValueError) and _NOT_RUNNING in str(exc):
        return StoreUnavailableError(str(exc))
    if isinstance(exc, ValueError | TypeError | KeyError):
        return StoreRejectedError(f"chroma refused the request: {exc}")
    return StoreUnavailableError(f"chroma failed: {exc!r}")


def _transport_cause(exc: BaseException) -> bool:
    """Whether a timeout or a connection failure is ``exc`` or the error it was raised from."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError | httpx.TransportError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl`` error behind a connection failure, if that is what it is."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a client error (httpx's or Chroma's own), if any.

    Chroma's client re-raises some of them as ``ValueError(str(e))``: the status is then
    found on the error it was raised from.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, httpx.HTTPStatusError):
            return seen.response.status_code
        if isinstance(seen, chromadb.errors.ChromaError) and seen.code() in (401, 403):
            return int(seen.code())
        seen = seen.__cause__ or seen.__context__
    return None
