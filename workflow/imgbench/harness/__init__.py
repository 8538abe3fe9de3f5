"""The timing harness: the timed runs of stores and reads (``measure``), the access
patterns (``access``), the reader processes (``readers``), memory (``memory``), fresh-array
checks (``freshness``), what produced a row (``provenance``), room for a store (``space``)
and where stores live (``storeref``).

Imports ``system``, ``methods``, ``experiment`` and ``data``.
"""
