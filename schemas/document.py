"""``ragstream.document.v1``: what producers put on the documents topic (key = document id)."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints

from schemas._base import WireModel

__all__ = [
    "DOCUMENT_SCHEMA",
    "DocumentDelete",
    "DocumentMessage",
    "DocumentUpsert",
    "FiniteFloat",
    "Metadata",
]

DOCUMENT_SCHEMA: Final = "ragstream.document.v1"

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is a number: no NaN or infinity (no store can hold or match them)."""
MetadataValue = str | int | FiniteFloat | bool
Metadata = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")],
    MetadataValue,
]
"""Flat metadata: keys of letters, digits, ``_`` and ``-``; scalar values (filterable)."""

DocId = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Tenant = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
]


class DocumentUpsert(WireModel):
    """Create or replace a document."""

    schema_: Literal["ragstream.document.v1"] = Field(default=DOCUMENT_SCHEMA, alias="schema")
    """Message type and version."""
    op: Literal["upsert"] = "upsert"
    """What to do with the document."""
    id: DocId
    """Document id, unique within the tenant; also the message key."""
    tenant: Tenant
    """Owner of the document; searches only ever see their own tenant."""
    title: str = Field(default="", max_length=1000)
    """Human title, returned with search hits."""
    text: str = Field(min_length=1)
    """The full text; it is chunked and embedded."""
    metadata: Metadata = Field(default_factory=dict)
    """Filterable attributes, returned with every hit."""


class DocumentDelete(WireModel):
    """Remove a document from both stores and the catalog."""

    schema_: Literal["ragstream.document.v1"] = Field(default=DOCUMENT_SCHEMA, alias="schema")
    """Message type and version."""
    op: Literal["delete"]
    """What to do with the document."""
    id: DocId
    """Document id."""
    tenant: Tenant
    """Owner of the document."""


DocumentMessage = Annotated[DocumentUpsert | DocumentDelete, Field(discriminator="op")]
"""Any message on the documents topic."""
