"""Scrubbing: secrets out of strings and nested data before they leave the worker.

Leaf helper of the runtime's observability: breaker events (the ``error`` field), Sentry
events and breadcrumbs all pass through here. Removes bearer tokens, JWT-looking strings,
API keys, passwords in URLs or ``key=value`` pairs, and (in nested data) the values of
sensitive keys such as ``authorization``, ``password`` or a document's ``text``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["FILTERED", "SENSITIVE_KEYS", "scrub_data", "scrub_text"]

FILTERED = "[Filtered]"

SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api_key",
        "apikey",
        "api-key",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "jwt",
        "dsn",
        "text",
        "query",
        "body",
    }
)
"""Keys (case-insensitive, ``-``/``_`` alike) whose values never leave: credentials and
document or query text."""

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization schemes with their credentials.
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9\-._~+/=]{8,}"), r"\1 " + FILTERED),
    # JWT: three base64url segments, the first starting like a JSON header.
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"), FILTERED),
    # Provider API keys (OpenAI ``sk-``/``sk-proj-``, Slack ``xox?-``, GitHub ``ghp_``...).
    (re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-]{16,}"), FILTERED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), FILTERED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), FILTERED),
    # Credentials in URLs: scheme://user:password@host.
    (re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^/\s:@]+):[^/\s@]+@"), r"\1:" + FILTERED + "@"),
    # key=value / key: value pairs naming a secret.
    (
        re.compile(
            r"(?i)\b(\w*(?:password|passwd|pwd|secret|api[_-]?key|token|credentials))"
            r"(['\"]?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&'\"]+)"
        ),
        r"\1\2" + FILTERED,
    ),
]


def scrub_text(value: str) -> str:
    """``value`` with tokens, keys and passwords replaced by ``[Filtered]``."""
    for pattern, replacement in _PATTERNS:
        value = pattern.sub(replacement, value)
    return value


_NORMALISED_KEYS = frozenset(k.replace("-", "_") for k in SENSITIVE_KEYS)


_SENSITIVE_PARTS = ("password", "passwd", "secret", "token", "api_key", "apikey", "credential")
"""A key containing one of these is a credential too (``sasl_plain_password``, ``auth_token``)."""


def _sensitive(key: Any, extra: frozenset[str]) -> bool:
    if not isinstance(key, str):
        return False
    norm = key.lower().replace("-", "_")
    if norm in extra or norm in _NORMALISED_KEYS:
        return True
    return any(part in norm for part in _SENSITIVE_PARTS)


def scrub_data(data: Any, *, keys: Iterable[str] = ()) -> Any:
    """A copy of ``data`` (dicts, lists, strings) with sensitive keys and strings scrubbed."""
    extra = frozenset(k.lower().replace("-", "_") for k in keys)
    return _scrub(data, extra)


def _scrub(data: Any, extra: frozenset[str]) -> Any:
    if isinstance(data, str):
        return scrub_text(data)
    if isinstance(data, dict):
        return {
            k: FILTERED if _sensitive(k, extra) and v not in (None, "") else _scrub(v, extra)
            for k, v in data.items()
        }
    if isinstance(data, (list, tuple)):
        # Header lists come as [name, value] pairs.
        if len(data) == 2 and _sensitive(data[0], extra):
            return [data[0], FILTERED]
        return [_scrub(v, extra) for v in data]
    return data
