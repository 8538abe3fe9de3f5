"""Results: what a run's rows become (the aggregate step, ``workflow/scripts/aggregate.py``)
and two runs side by side.

- ``load``: the rows, provenance records and Snakemake benchmark files of a run.
- ``busy``: whether the machine was quiet while a region was timed; overlapping timings.
- ``stats``: the interval of a median and which candidate is clearly best (pure numbers).
- ``series``: series names, the baseline, the points tables and figures start from.
- ``points``: statistics per point (``timings_stats.csv``).
- ``footprint``: disk usage and job memory (``disk_usage.*``, ``job_memory.csv``).
- ``verdicts``: the fastest and the smallest, or the tie, in words.
- ``clients``: reads by many client processes, the summary's "Many clients" section and
  whose throughput holds best as clients are added.
- ``markdown``: how tables and numbers are written; ``tables``: the summary's tables;
  ``summary``: the summary page (``summary.md``).
- ``matching``: two runs' points matched and judged; ``compare``: ``imgbench compare``.

Imports everything below it (``harness`` for the rows' provenance); never ``report``.
"""
