"""Helpers for the contract suites: does an implementation match its protocol, a dead port."""

from __future__ import annotations

import inspect
import socket
from typing import Any

__all__ = ["closed_port", "protocol_mismatches"]


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _shape(function: Any) -> list[tuple[str, Any, Any]]:
    """Name, kind and default of each parameter after ``self``."""
    parameters = list(inspect.signature(function).parameters.values())[1:]
    return [(p.name, p.kind, p.default) for p in parameters]


def protocol_mismatches(implementation: Any, protocol: type) -> list[str]:
    """How ``implementation``'s methods differ from ``protocol``'s: a missing method, a sync
    one where the protocol's is async (or the reverse), or other parameters (names, kinds,
    defaults; extra optional parameters are allowed). Empty when it conforms."""
    cls = implementation if isinstance(implementation, type) else type(implementation)
    problems = []
    for name, wanted in vars(protocol).items():
        if name.startswith("_") or not inspect.isfunction(wanted):
            continue
        got = getattr(cls, name, None)
        if got is None or not callable(got):
            problems.append(f"{name}: missing")
            continue
        if inspect.iscoroutinefunction(wanted) != inspect.iscoroutinefunction(got):
            problems.append(f"{name}: async differs")
        expected = _shape(wanted)
        names = {n for n, _, _ in expected}
        actual = [p for p in _shape(got) if p[0] in names or p[2] is inspect.Parameter.empty]
        if actual != expected:
            problems.append(f"{name}: parameters {actual} differ from {expected}")
    return problems
