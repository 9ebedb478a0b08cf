"""Tenant collection names: valid for Chroma, one per tenant, never the shared name."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from stores.chroma import tenant_collection

# Chroma's rule: 3-512 characters of [a-zA-Z0-9._-], starting and ending with a letter or digit.
_CHROMA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")
_TENANT = st.from_regex(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")  # schemas.document.Tenant
_BASE = "ragstream-local-minilm-384"


def test_readable_tenants_keep_their_name() -> None:
    """An ordinary tenant is readable in its collection's name."""
    assert tenant_collection(_BASE, "acme") == f"{_BASE}.t-acme"
    assert tenant_collection(_BASE, "a") == f"{_BASE}.t-a"
    assert tenant_collection(_BASE, "team_2.prod") == f"{_BASE}.t-team_2.prod"


def test_tenants_that_cannot_end_a_name_are_hashed() -> None:
    """A tenant ending in ``-``/``.``/``_`` or holding ``..`` gets a hashed name."""
    for tenant in ("acme-", "acme.", "acme_", "a..b"):
        assert tenant_collection(_BASE, tenant).startswith(f"{_BASE}.h-")
    assert tenant_collection(_BASE, "acme-") != tenant_collection(_BASE, "acme.")


@given(_TENANT)
def test_every_tenant_gets_a_valid_name_that_is_not_the_shared_one(tenant: str) -> None:
    """Any tenant the schema accepts maps to a valid Chroma name other than the base."""
    name = tenant_collection(_BASE, tenant)
    assert _CHROMA_NAME.match(name) and ".." not in name
    assert name != _BASE


@given(_TENANT, _TENANT)
def test_two_tenants_never_share_a_collection(a: str, b: str) -> None:
    """The mapping is one-to-one."""
    if a != b:
        assert tenant_collection(_BASE, a) != tenant_collection(_BASE, b)


def test_identity_parses_every_chunk_id_back() -> None:
    """A chunk id names its chunk unambiguously, even with ``/`` and ``#`` in the doc id."""
    from schemas.chunks import chunk_id, identity

    for tenant, doc_id, n in [("acme", "d", 0), ("a.b", "x/y#z#", 12), ("t", "#", 3)]:
        chunk = identity(chunk_id(tenant, doc_id, n))
        assert (chunk.tenant, chunk.doc_id, chunk.n, chunk.text) == (tenant, doc_id, n, "")
