"""Use cases behind breakers: resilience, embedding, chunking, indexing, search, auth.

Layer 4 of 6: imports ``stores``, ``streams`` and ``schemas``.
"""
