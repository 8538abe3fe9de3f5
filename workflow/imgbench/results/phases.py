"""Where a run's time went: the phases of its store and read jobs (``system.phases``,
recorded under ``job`` in each job's env.json) and the time between them.

``job_phases`` gathers one row per job and phase; ``run_breakdown`` sums them over the run
and adds what no job recorded: the time from the first job's start to the last job's end
that no timing job covered (Snakemake choosing, starting and finishing jobs; removals,
plots and aggregation). ``TIMED`` is the timed operations; every other phase is what the
run spent beside them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from imgbench.system import phases

BETWEEN_JOBS = "between jobs"
PHASE_COLUMNS = ["job", "phase", "seconds", "started_unix", "finished_unix"]


def job_phases(env_paths: Iterable[Path], root: Path | None = None) -> pd.DataFrame:
    """One row per job and phase, from the jobs' env.json files (jobs that recorded no
    phases are left out); ``job``: the env.json's path relative to ``root``."""
    rows = []
    for path in env_paths:
        path = Path(path)
        ledger = json.loads(path.read_text()).get("job")
        if not ledger:
            continue
        name = str(path.relative_to(root)) if root is not None else str(path)
        for phase, seconds in ledger["phases_s"].items():
            rows.append([name, phase, seconds, ledger["started_unix"], ledger["finished_unix"]])
    return pd.DataFrame(rows, columns=PHASE_COLUMNS)


def covered_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``(start, end)`` intervals."""
    covered, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            covered += end - start
            reach = end
        elif end > reach:
            covered += end - reach
            reach = end
    return covered


def run_breakdown(table: pd.DataFrame) -> pd.DataFrame:
    """Seconds per phase over the run, largest first, with each one's share of the span
    from the first job's start to the last job's end, and ``BETWEEN_JOBS``: the part of
    that span no job recorded covered."""
    if table.empty:
        return pd.DataFrame(columns=["phase", "seconds", "jobs", "share"])
    spans = table.drop_duplicates("job")[["started_unix", "finished_unix"]]
    span = spans["finished_unix"].max() - spans["started_unix"].min()
    between = span - covered_seconds(spans.itertuples(index=False, name=None))
    summed = table.groupby("phase").agg(seconds=("seconds", "sum"), jobs=("job", "nunique"))
    summed.loc[BETWEEN_JOBS] = [between, 0]
    summed = summed.sort_values("seconds", ascending=False).reset_index()
    summed["share"] = summed["seconds"] / span
    return summed


def describe(table: pd.DataFrame) -> str:
    """The breakdown as a Markdown table and a line with the run's span, its timed work
    and their ratio."""
    breakdown = run_breakdown(table)
    if breakdown.empty:
        return "No job recorded its phases.\n"
    span = table["finished_unix"].max() - table["started_unix"].min()
    timed = float(breakdown.loc[breakdown["phase"] == phases.TIMED, "seconds"].sum())
    lines = [
        f"{table['job'].nunique()} jobs over {span:.1f} s (first job's start to last job's "
        f"end); timed work {timed:.1f} s: {span / timed:.2f} s of wall per timed second"
        if timed
        else f"{table['job'].nunique()} jobs over {span:.1f} s; no timed work",
        "",
        "| phase | seconds | share | jobs |",
        "|---|---:|---:|---:|",
    ]
    for row in breakdown.itertuples(index=False):
        lines.append(f"| {row.phase} | {row.seconds:.1f} | {row.share:.1%} | {row.jobs} |")
    return "\n".join(lines) + "\n"
