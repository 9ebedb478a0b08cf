"""Fixtures for every test tier: generic helpers only.

Kept light on purpose: the unit tests (``tests/unit``) import this and must run without any
service and without importing faust. Service fixtures live in ``tests/integration/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    """A fresh, empty ragstream data dir for one test."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return data_dir
