"""The ``imgbench`` command (``[project.scripts]`` of pyproject.toml), with subcommands:

    imgbench compare A B [--csv FILE]   two runs' results compared point by point
                                        (``compare``: medians, ratio B/A, verdicts)
    imgbench phases RUN                 where a run's time went: the phases of its store
                                        and read jobs, summed (``results.phases``)
    imgbench photos OUT_DIR [--count N] an example image folder of real photographs
                                        (``photos``; also ``python -m imgbench.data.photos``)
    imgbench config-docs [--check]      the table of config keys in docs/configuration.md,
                                        generated from the schema's descriptions
                                        (``config_docs``)

Without installing the package: ``PYTHONPATH=workflow python -m imgbench.cli ...``.
Errors in the input are one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imgbench.data import photos
from imgbench.experiment import config_docs
from imgbench.results import compare, phases

COMPARE_DESCRIPTION = """\
Compare two runs point by point, as pyperf compare_to does: per point present in both,
the median time of A and of B with their intervals (over the independent stores), the
ratio B/A with its interval and a verdict (faster / slower / no clear difference); then
whether the two runs agree on which series is faster at each point. Points of one run
only are listed."""

COMPARE_EPILOG = """\
A and B are results directories (holding timings.csv) or project directories (holding
results/timings.csv). The report ends with `contradictions: N of M verdicts`: M pairs of
series (method:variant) measured at the same point in both runs with a clear verdict in at
least one run, N of them where one run says X is faster and the other says Y is."""


def run_compare(args: argparse.Namespace) -> int:
    """Print the comparison of ``args.a`` and ``args.b``; 2 on input that cannot be."""
    try:
        text = compare.compare(args.a, args.b, csv=args.csv)
    except compare.CompareInputError as error:
        print(f"imgbench compare: {error}", file=sys.stderr)
        return 2
    if args.csv is not None:
        print(f"imgbench compare: point table written to {args.csv}", file=sys.stderr)
    sys.stdout.write(text)
    return 0


PHASES_DESCRIPTION = """\
Where a run's time went: every store and read job records how long it spent in each phase
(the timed operation, preparing the machine, verifying, starting up), in its env.json; this
sums them over the run, with the time no job covered ("between jobs": Snakemake starting and
finishing jobs, removals), and the run's wall time per timed second."""


def run_phases(args: argparse.Namespace) -> int:
    """Print the phase breakdown of the run in ``args.run``; 2 when it has no rows."""
    root = args.run / "results" if (args.run / "results" / "rows").is_dir() else args.run
    rows = root / "rows"
    if not rows.is_dir():
        print(
            f"imgbench phases: {args.run} holds no rows/ (nor results/rows/); give a results "
            "directory of a run",
            file=sys.stderr,
        )
        return 2
    table = phases.job_phases(sorted(rows.rglob("*.env.json")), rows)
    if args.csv is not None:
        table.to_csv(args.csv, index=False)
    sys.stdout.write(phases.describe(table))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgbench", description="Tools of the imgbench image-storage benchmark."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    compared = commands.add_parser(
        "compare",
        help="compare two runs point by point (medians, ratio B/A, verdicts)",
        description=COMPARE_DESCRIPTION,
        epilog=COMPARE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compared.add_argument("a", type=Path, metavar="A", help="the reference run")
    compared.add_argument("b", type=Path, metavar="B", help="the run compared with A")
    compared.add_argument(
        "--csv", type=Path, metavar="FILE", help="also write the point table to FILE"
    )
    compared.set_defaults(handler=run_compare)
    phased = commands.add_parser(
        "phases",
        help="where a run's time went: the phases of its jobs, summed",
        description=PHASES_DESCRIPTION,
    )
    phased.add_argument("run", type=Path, metavar="RUN", help="a results or project directory")
    phased.add_argument(
        "--csv", type=Path, metavar="FILE", help="also write one row per job and phase to FILE"
    )
    phased.set_defaults(handler=run_phases)
    built = commands.add_parser(
        "photos",
        help="build an example image folder of real photographs",
        description=photos.DESCRIPTION,
    )
    photos.add_arguments(built)
    built.set_defaults(handler=photos.run)
    table = commands.add_parser(
        "config-docs",
        help="regenerate (or --check) the table of config keys in docs/configuration.md",
        description=config_docs.DESCRIPTION,
    )
    config_docs.add_arguments(table)
    table.set_defaults(handler=config_docs.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``imgbench`` command; its exit status."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
