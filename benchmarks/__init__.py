"""Benchmarks of ragstream on the embedded stack: scripts, not tests.

Outside the data flow: nothing in ``schemas``/``streams``/``agents``/``services``/``stores``
imports this package. ``python benchmarks/run.py`` (or ``make bench``) runs them; see
BENCHMARKS.md for what each one measures against which baseline.
"""
