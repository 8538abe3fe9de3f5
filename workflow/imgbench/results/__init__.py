"""Results: the rows a job writes (``rows``), statistics (``stats``), the tables, verdicts
and summary of a run (``aggregate``) and two runs side by side (``compare``).

Imports everything below it (``harness`` for the rows' provenance); never ``report``.
"""
