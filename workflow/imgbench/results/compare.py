"""``imgbench compare A B``: two runs' points matched and judged by ``matching`` (where
the rule is described), written as text (the run lines, an explanation, the point table,
the summary over points, points only one run has, series against series within each run,
and last ``contradictions: N of M verdicts``) and, with ``--csv``, as a table of points.

Each part of the text is a function returning its lines; ``report`` joins them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from imgbench.results.matching import (
    AGREE,
    CONTRADICT,
    FASTER,
    FIRST,
    KEYS,
    NO_CLEAR,
    NO_VERDICT,
    NOT_COMPARED,
    ONE_RUN_CLEAR,
    ONLY_A,
    ONLY_B,
    SECOND,
    SLOWER,
    CompareInputError,
    Comparison,
    PairCheck,
    Point,
    RunComparison,
    cell,
    compare_runs,
    context_key,
    context_label,
    load_run,
    point_label,
    series_of,
    timings_path,
)
from imgbench.system.atomic import write_text

__all__ = ["CompareInputError", "compare", "point_table", "report", "write_csv"]

# --- the point table (--csv) ------------------------------------------------------------------


SIDE_FIELDS = ("stores", "median_s", "low_s", "high_s", "level", "images_per_s", "busy")


def _side(point: Point | None, suffix: str) -> dict:
    """One run's columns of the point table, empty where the run lacks the point."""
    values = (math.nan,) * 6 + ("",)
    if point is not None:
        values = (point.stores, point.median, point.low, point.high, point.level)
        values += (point.images_per_s, point.busy)
    return {f"{name}_{suffix}": value for name, value in zip(SIDE_FIELDS, values, strict=True)}


def _record(key: tuple, a: Point | None, b: Point | None, found: Comparison | None) -> dict:
    record = dict(zip(KEYS, key, strict=True))
    record.update(series=series_of(key), point=point_label(key))
    record.update(_side(a, "a") | _side(b, "b"))
    record.update(
        ratio=found.ratio if found else math.nan,
        ratio_low=found.ratio_low if found else math.nan,
        ratio_high=found.ratio_high if found else math.nan,
        ratio_level_min=found.ratio_level if found else math.nan,
        verdict=found.verdict if found else (ONLY_A if b is None else ONLY_B),
        settings_differ="; ".join(f"{n}: A {x}, B {y}" for n, x, y in found.differences)
        if found
        else "",
    )
    return record


def point_table(result: RunComparison) -> pd.DataFrame:
    """One row per point of either run: both sides, the ratio and the verdict (``only
    in A`` / ``only in B`` for a point one run lacks)."""
    records = [_record(c.key, c.a, c.b, c) for c in result.common]
    records += [_record(key, result.points_a[key], None, None) for key in result.only_a]
    records += [_record(key, None, result.points_b[key], None) for key in result.only_b]
    table = pd.DataFrame.from_records(records)
    return table.astype({"stores_a": "Int64", "stores_b": "Int64"})


def write_csv(result: RunComparison, path: str | Path) -> None:
    write_text(point_table(result).to_csv(index=False), path)


# --- the report ---------------------------------------------------------------------------


def seconds_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def interval_text(point: Point) -> str:
    """``0.512 [0.498, 0.531] 75%``; the median alone with one store."""
    text = seconds_text(point.median)
    if not point.has_interval:
        return f"{text} (1 store)"
    low, high = seconds_text(point.low), seconds_text(point.high)
    return f"{text} [{low}, {high}] {point.level:.0%}"


def ratio_text(found: Comparison) -> str:
    if math.isnan(found.ratio):
        return "n/a"
    if math.isnan(found.ratio_low):
        return f"{found.ratio:.3f}"
    return f"{found.ratio:.3f} [{found.ratio_low:.3f}, {found.ratio_high:.3f}]"


def speed_text(a: Point, b: Point) -> str:
    if math.isnan(a.images_per_s) or math.isnan(b.images_per_s):
        return ""
    return f"{a.images_per_s:,.0f} -> {b.images_per_s:,.0f}"


def busy_text(a: Point, b: Point) -> str:
    return ",".join(side for side, point in (("A", a), ("B", b)) if point.busy)


def fixed_width(header: list[str], body: list[list[str]], right: set[int]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; ``right`` aligns right."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [line(header), "  ".join("-" * width for width in widths), *map(line, body)]


def table_lines(result: RunComparison) -> list[str]:
    """The point table: medians and intervals of A and B, the ratio, images/s, verdict."""
    header = ["point", "stores A/B", "A: median s [interval]", "B: median s [interval]"]
    header += ["B/A [interval]", "images/s A -> B", "verdict"]
    busy = any(c.a.busy or c.b.busy for c in result.common)
    header += ["busy"] if busy else []
    body = []
    for found in result.common:
        row = [point_label(found.key), f"{found.a.stores}/{found.b.stores}"]
        row += [interval_text(found.a), interval_text(found.b), ratio_text(found)]
        row += [speed_text(found.a, found.b), found.verdict + (" *" if found.differences else "")]
        row += [busy_text(found.a, found.b)] if busy else []
        body.append(row)
    return fixed_width(header, body, right={1, 5})


def describe_run(name: str, location: str | Path, rows: pd.DataFrame, points: dict) -> str:
    """``A: runs/ssd/timings.csv: 120 rows, 40 points, 3 stores a point; host n1; ext4``."""
    stores = sorted({point.stores for point in points.values()})
    spread = f"{stores[0]}" if len(stores) == 1 else f"{stores[0]}-{stores[-1]}"
    text = f"{name}: {timings_path(location)}: {len(rows)} timed rows, {len(points)} points, "
    text += f"{spread} store{'' if stores == [1] else 's'} a point"
    for column, what in (("host", "host"), ("store_fs_type", "store file system")):
        if column in rows:
            values = sorted({str(cell(value)) for value in rows[column]} - {""})
            text += f"; {what} {', '.join(values)}" if values else ""
    return text


EXPLANATION = """\
Time of one timed operation in seconds (lower is better). Per point and run: the median
of the store medians (a store's median over its timed repetitions), with the
order-statistics interval of that median over the independent stores and its coverage
(2 stores: min-max, 50 %; 3: min-max, 75 %; 6 or more: at least 95 %; 1 store: none).
B/A: ratio of the medians (above 1: B took longer); its interval is
[B low / A high, B high / A low], covering the true ratio with at least coverage A x
coverage B, and excludes 1 exactly when the intervals do not overlap.
verdict (B against A): faster / slower when B's interval lies wholly below / above A's,
else no clear difference."""


def quartiles(values: list[float]) -> tuple[float, float, float]:
    series = pd.Series(values, dtype=float)
    return tuple(float(series.quantile(q)) for q in (0.25, 0.5, 0.75))


def summary_lines(result: RunComparison) -> list[str]:
    """The ratio over all common points, the verdict counts, busy points and settings."""
    ratios = [c.ratio for c in result.common if not math.isnan(c.ratio)]
    lines = [f"Summary over the {len(result.common)} points in both runs:"]
    if ratios:
        q1, median, q3 = quartiles(ratios)
        lines.append(
            f"  B/A time ratio: median {median:.3f}, quartiles {q1:.3f} to {q3:.3f}, "
            f"range {min(ratios):.3f} to {max(ratios):.3f}"
        )
    counts = Counter(c.verdict for c in result.common)
    order = [FASTER, SLOWER, NO_CLEAR, NO_VERDICT]
    shown = [f"{verdict} {counts[verdict]}" for verdict in order if counts[verdict]]
    lines.append(f"  verdicts for B: {', '.join(shown)}")
    busy_a = sum(c.a.busy for c in result.common)
    busy_b = sum(c.b.busy for c in result.common)
    if busy_a or busy_b:
        lines.append(
            f"  measured on a busy machine: {busy_a} points in A, {busy_b} in B "
            "(column busy): their times may be inflated"
        )
    lines += _difference_lines(result.common)
    return lines


def _difference_lines(common: list[Comparison]) -> list[str]:
    differing = [c for c in common if c.differences]
    if not differing:
        return []
    lines = [f"  settings differ between the runs at {len(differing)} points (verdict *):"]
    seen = Counter(difference for c in differing for difference in c.differences)
    for (name, in_a, in_b), count in sorted(seen.items()):
        lines.append(f"    {name}: A {in_a}, B {in_b} ({count} points)")
    return lines


def only_lines(title: str, keys: list[tuple]) -> list[str]:
    if not keys:
        return [f"{title}: none"]
    return [f"{title} ({plural(len(keys), 'point')}):", *(f"  {point_label(k)}" for k in keys)]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _pair_side(check: PairCheck, in_run: str, points: tuple[Point, Point]) -> str:
    first, second = points
    said = f"{check.winner(in_run)} faster" if in_run in (FIRST, SECOND) else NO_CLEAR
    text = f"{said} ({check.first} {interval_text(first)}; "
    text += f"{check.second} {interval_text(second)})"
    return text + (" busy" if first.busy or second.busy else "")


def pair_lines(result: RunComparison) -> list[str]:
    """Series against series within each run: the contradictions, then the counts."""
    lines = [
        "Series against series within each run, at each context (every key but method and",
        "variant equal); X faster when its interval lies wholly below Y's:",
    ]
    for check in result.contradictions:
        context = context_label(context_key(check.context))
        lines.append(f"  contradiction at {context}: {check.first} vs {check.second}")
        lines.append(f"    A: {_pair_side(check, check.in_a, check.points_a)}")
        lines.append(f"    B: {_pair_side(check, check.in_b, check.points_b)}")
    outcomes = Counter(check.outcome for check in result.pairs)
    compared = len(result.pairs) - outcomes[NOT_COMPARED]
    share = f" ({outcomes[AGREE] / compared:.0%})" if compared else ""
    lines.append(
        f"  {len(result.pairs)} pairs measured in both runs, {compared} with an interval in "
        f"both runs: same verdict in {outcomes[AGREE]}{share},"
    )
    lines.append(
        f"  clear in one run only in {outcomes[ONE_RUN_CLEAR]}, "
        f"opposite winners in {outcomes[CONTRADICT]}"
    )
    lines.append("  M: pairs with an interval in both runs and a clear verdict in at least one;")
    lines.append("  N: those of them where the two runs name opposite winners")
    return lines


def report(result: RunComparison, runs: Mapping[str, tuple[str | Path, pd.DataFrame]]) -> str:
    """The whole text ``imgbench compare`` prints; ``runs`` maps ``A`` and ``B`` to
    (location, rows). The last line is ``contradictions: N of M verdicts``."""
    points = {"A": result.points_a, "B": result.points_b}
    lines = [describe_run(name, *runs[name], points[name]) for name in ("A", "B")]
    lines += ["", EXPLANATION, "", *table_lines(result), ""]
    lines += summary_lines(result) + [""]
    lines += only_lines("Only in A", result.only_a) + only_lines("Only in B", result.only_b)
    lines += ["", *pair_lines(result)]
    lines.append(
        f"contradictions: {len(result.contradictions)} of {len(result.clear_pairs)} verdicts"
    )
    return "\n".join(lines) + "\n"


def compare(location_a: str | Path, location_b: str | Path, csv: str | Path | None = None) -> str:
    """Load, compare, optionally write the point table to ``csv``; the report's text."""
    rows_a, rows_b = load_run(location_a), load_run(location_b)
    result = compare_runs(rows_a, rows_b)
    if csv is not None:
        write_csv(result, csv)
    return report(result, {"A": (location_a, rows_a), "B": (location_b, rows_b)})
