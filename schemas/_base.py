"""The bases of the wire models: what workers read is strict, what they write is read tolerantly.

A version (``.v1``) of a message workers *send* (results, replies, breaker events) may gain
optional fields; its readers must ignore fields they do not know (the tolerant reader), so a
newer worker never breaks an older client. What workers *read* (documents, search requests)
stays strict: an unknown field there is a producer's typo, answered with an error.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["OutputModel", "WireModel"]


class WireModel(BaseModel):
    """An immutable message; unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class OutputModel(WireModel):
    """A message workers send: readers ignore unknown fields (a version may gain optional ones)."""

    model_config = ConfigDict(frozen=True, extra="ignore", use_attribute_docstrings=True)
