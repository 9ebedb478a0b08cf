"""Fixtures for every test tier (none yet beyond pytest's own).

Kept light on purpose: the unit tests (``tests/unit``) import this and must run without any
service and without importing faust. Service fixtures live in ``tests/integration/conftest.py``.
"""
