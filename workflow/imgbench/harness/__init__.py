"""The timing harness. A job's store or read (``measure``: ``run_store``, ``run_read``) of a
point (``point``: what is measured, and how) on a source (``source``) is a composition of
named steps: preparing the machine (``prepare``), one timed region per repetition
(``region``: the clock, CPU time, device bytes, others' CPU time, load and pressure), the
timed reads (``timed_reads``) with their reader processes (``readers``) and access
patterns (``access``), verification outside the clock (``verification``, ``freshness``)
and the rows (``job_rows``). Around them: memory (``memory``), what produced a row
(``provenance``), room for a store (``space``) and where stores live (``storeref``).

Imports ``system``, ``methods``, ``experiment`` and ``data``.
"""
