"""Two runs matched point by point, the model of ``imgbench compare A B`` (``compare``
renders it as text and as a table), as ``pyperf compare_to`` compares two benchmark files.

What is compared is the time of one timed operation (``seconds`` of ``timings.csv``: a
store, or a read of a pattern; lower is better), per point. A point is one setting of
``points.GROUP_KEYS`` (method, variant, image size, cutoff, operation, cache state and
eviction, read pattern, readahead, readers, nodes and clients), as in
``timings_stats.csv``. A run written before reads by client processes existed has
``nodes`` 1 and ``clients`` 0 in every row (``load.with_defaults``), so its points match
the other run's reads by the job's own readers, and a many-clients point of one run is
only in that run.

Per point and run:

- **store medians**: each independent store (``repeat``) gives the median of its timed
  repetitions (``inner_repeat``); the stores, not the timings, are the independent units.
- **median**: the median of the store medians.
- **interval**: ``stats.median_interval`` of the store medians, the order-statistics
  interval of their median: 2 stores give min–max at 50 % coverage, 3 give min–max at
  75 %, 4 and 5 min–max at 87.5 % and 93.75 %, 6 or more at least 95 %. One store gives no
  interval and no verdict. Median and interval follow the rule of ``points.summarise`` for
  ``timings_stats.csv``'s ``median_s``, ``ci_low`` and ``ci_high``, recomputed here from
  the rows, so any two ``timings.csv`` compare alike whenever they were aggregated.
- **images/s**: the median over stores of each store's median ``images_per_s``
  (``images_read / seconds`` where a run lacks that column).

Between the runs, for every point present in both:

- **ratio** B/A of the two medians (above 1: B took longer) and its interval
  ``[B low / A high, B high / A low]``, made from the two runs' intervals. The runs are
  independent, so it covers the true ratio whenever both intervals cover their medians:
  with probability at least ``level A x level B`` (``ratio_level_min``; 56 % with 3
  stores a side, 94 % with 6). With up to 5 stores a side it is the range of all pairwise
  ratios of store medians ``b_j / a_i``. It excludes 1 exactly when the two intervals do
  not overlap, so it always agrees with the verdict.
- **verdict**: ``faster`` when B's interval lies wholly below A's, ``slower`` when wholly
  above, ``no clear difference`` when they overlap (the project's rule: a claim of faster
  rests on non-overlapping intervals), ``one store: no verdict`` when a side has one store.

Within each run, the series (method and variant) measured at the same context (every
other key equal) are compared pair by pair with the same rule: X faster, Y faster, or no
clear difference. For each pair measured in both runs the two verdicts are set side by
side: they agree (the same verdict), one run only is clear (the other finds no clear
difference), or they **contradict** (one run says X is faster, the other says Y is). The
last line of the report is ``contradictions: N of M verdicts``, where M counts the pairs
with an interval in both runs and a clear verdict in at least one run, and N those of them
with opposite clear verdicts.

A point is marked busy in a run when any of its rows was, by the aggregation's rule
(``busy.busy_rows``: other processes' CPU time ``foreign_cpu_seconds`` beyond its
resolution above ``busy.foreign_cpu_cores`` of the region, at the default threshold;
rows from before it was measured by load and CPU pressure), or carries a true ``busy``
column. Runs without these columns are not marked.
Settings that should be equal between the runs at a point (``SETTINGS``: batch size,
shuffle buffer, chunk and pool sizes, fsync, images read, seed) are checked; where they
differ, the point is listed, since its times are then of different work.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.results import busy as busy_rule
from imgbench.results import series
from imgbench.results import stats as st
from imgbench.results.load import READ_DEFAULTS, with_defaults
from imgbench.results.points import GROUP_KEYS

KEYS = GROUP_KEYS
SERIES_KEYS = ("method", "variant")
CONTEXT_KEYS = tuple(key for key in KEYS if key not in SERIES_KEYS)
# Every key but those older runs lack, which loading fills (``load.READ_DEFAULTS``).
REQUIRED = [key for key in [*KEYS, "repeat", "seconds"] if key not in READ_DEFAULTS]
SETTINGS = (
    "batch_size",
    "shuffle_buffer",
    "chunk_images",
    "pool_images",
    "fsync",
    "images_read",
    "seed",
    "client_launch",
)
BUSY_COLUMNS = ("load_1min", "cpu_count", "cpu_pressure_pct", "readers")

FASTER, SLOWER = "faster", "slower"
NO_CLEAR = "no clear difference"
NO_VERDICT = "one store: no verdict"
ONLY_A, ONLY_B = "only in A", "only in B"

# A series pair's verdict within one run, and how the two runs' verdicts relate.
FIRST, SECOND, TIE, NO_INTERVAL = "first", "second", "tie", "no interval"
AGREE, CONTRADICT, ONE_RUN_CLEAR, NOT_COMPARED = "agree", "contradict", "one run", "n/a"


class CompareInputError(ValueError):
    """Input that cannot be compared; the message is one sentence naming the fix."""


# --- loading ------------------------------------------------------------------------------


def timings_path(location: str | Path) -> Path:
    """``timings.csv`` of a run: ``location`` itself (a CSV file), ``location/timings.csv``
    (a results directory) or ``location/results/timings.csv`` (a project directory)."""
    location = Path(location)
    if location.is_file():
        return location
    for candidate in (location / "timings.csv", location / "results" / "timings.csv"):
        if candidate.is_file():
            return candidate
    raise CompareInputError(
        f"{location} holds neither timings.csv nor results/timings.csv: give the results "
        "directory of a finished run (or the project directory it ran in)"
    )


def load_run(location: str | Path) -> pd.DataFrame:
    """The rows of a run's ``timings.csv`` (one per timed operation) with a timing."""
    path = timings_path(location)
    try:
        rows = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CompareInputError(
            f"{path} is not a CSV table ({error}): give the timings.csv a run wrote"
        ) from None
    missing = [column for column in REQUIRED if column not in rows]
    if missing:
        raise CompareInputError(
            f"{path} lacks the columns {', '.join(missing)}: give the timings.csv of an "
            "imgbench run (results/timings.csv)"
        )
    rows = rows[pd.to_numeric(rows["seconds"], errors="coerce").notna()]
    if rows.empty:
        raise CompareInputError(f"{path} has no timed rows: give the timings of a finished run")
    return with_defaults(rows.reset_index(drop=True))


def busy_rows(rows: pd.DataFrame) -> pd.Series | None:
    """Whether each row was measured on a busy machine, by the aggregation's own rule
    (``busy.busy_rows``: others' CPU time beyond its resolution, else load and
    pressure for rows written before it was measured); a ``busy`` column, where rows carry
    one, counts too. None when the rows record nothing to tell."""
    flags = []
    if "busy" in rows:
        flags.append(rows["busy"].map(lambda value: str(value).lower() in ("true", "1", "1.0")))
    if "foreign_cpu_seconds" in rows or all(column in rows for column in BUSY_COLUMNS):
        flags.append(busy_rule.busy_rows(rows, busy_rule.DEFAULT_BUSY))
    if not flags:
        return None
    busy = flags[0]
    for flag in flags[1:]:
        busy = busy | flag
    return busy.astype(bool)


# --- points -------------------------------------------------------------------------------


def cell(value):
    """A key or setting value in one form for both runs: NaN and empty as ``""``, whole
    floats as int (a column with an empty cell reads as float), numbers as Python's."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def point_key(values: Iterable) -> tuple:
    """A point's key: its values of ``KEYS``, in that order, each through ``cell``."""
    return tuple(cell(value) for value in values)


def field_of(key: tuple, name: str):
    """The value of ``name`` (one of ``KEYS``) in a point key."""
    return key[KEYS.index(name)]


@dataclass(frozen=True)
class Point:
    """One point of one run: the median time of each of its stores (seconds) and what
    follows from them (see the module's docstring)."""

    store_medians: tuple[float, ...]
    median: float
    low: float  # NaN without an interval (one store)
    high: float
    level: float  # coverage of [low, high]
    images_per_s: float
    busy: bool = False
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def stores(self) -> int:
        return len(self.store_medians)

    @property
    def has_interval(self) -> bool:
        return self.stores >= 2


def make_point(
    store_medians: Iterable[float],
    images_per_s: float = math.nan,
    busy: bool = False,
    settings: tuple[tuple[str, str], ...] = (),
) -> Point:
    """A point from its store medians: their median and the interval of that median."""
    medians = tuple(sorted(float(value) for value in store_medians))
    low, high, level = st.median_interval(medians)
    if len(medians) < 2:
        low = high = level = math.nan
    return Point(
        medians, statistics.median(medians), low, high, level, images_per_s, busy, settings
    )


def _speeds(rows: pd.DataFrame) -> pd.Series:
    """Images per second of each row: ``images_per_s``, else ``images_read / seconds``."""
    if "images_per_s" in rows and rows["images_per_s"].notna().any():
        return pd.to_numeric(rows["images_per_s"], errors="coerce")
    if "images_read" in rows:
        return pd.to_numeric(rows["images_read"], errors="coerce") / rows["seconds"]
    return pd.Series(math.nan, index=rows.index)


def _settings(rows: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    """The distinct values of each of ``SETTINGS`` the rows have, as text."""
    present = [column for column in SETTINGS if column in rows]
    return tuple(
        (column, ", ".join(sorted({str(cell(value)) for value in rows[column]})))
        for column in present
    )


def point_of(rows: pd.DataFrame) -> Point:
    """The point measured by ``rows`` (all rows of one point of one run)."""
    by_store = rows.groupby("repeat")
    store_speeds = _speeds(rows).groupby(rows["repeat"]).median().dropna()
    speed = float(store_speeds.median()) if len(store_speeds) else math.nan
    busy = bool(rows["_busy"].any()) if "_busy" in rows else False
    return make_point(by_store["seconds"].median(), speed, busy, _settings(rows))


def run_points(rows: pd.DataFrame) -> dict[tuple, Point]:
    """Every point of a run's rows, by key."""
    rows = with_defaults(rows)
    busy = busy_rows(rows)
    rows = rows if busy is None else rows.assign(_busy=busy)
    keys = [point_key(values) for values in rows[KEYS].itertuples(index=False, name=None)]
    groups = pd.Series(range(len(rows)), index=rows.index).groupby(
        pd.Series(keys, index=rows.index)
    )
    return {key: point_of(rows.loc[members.index]) for key, members in groups}


def _sortable(value) -> tuple:
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(value))


def sort_key(key: tuple) -> tuple:
    """Stores before reads, then as the summary's tables (``tables``) order points."""
    order = {"store": 0, "read": 1}.get(field_of(key, "operation"), 2)
    pattern = vocabulary.pattern_rank(str(field_of(key, "read_pattern")))
    ordered = ["method", "variant", "image_size", "cutoff", "cache", "eviction"]
    rest = [_sortable(field_of(key, name)) for name in ordered]
    tail = [_sortable(field_of(key, name)) for name in ("readahead", "clients", "nodes")]
    tail.append(_sortable(field_of(key, "readers")))
    return (order, *rest, pattern, *tail)


def series_of(key: tuple) -> str:
    return series.series_name(str(field_of(key, "method")), str(field_of(key, "variant")))


def context_label(key: tuple) -> str:
    """Everything of a point but its series: ``32px 1,000 images read whole cold/fadvise
    1 reader ra on`` (a store: ``32px 1,000 images store``; a read by client processes
    names them, ``2x2 clients``, instead of its reader)."""
    size, cutoff = field_of(key, "image_size"), field_of(key, "cutoff")
    parts = [f"{size}px", f"{cutoff:,} images" if isinstance(cutoff, int) else str(cutoff)]
    operation = str(field_of(key, "operation"))
    parts.append(operation)
    if operation == "read":
        cache, eviction = field_of(key, "cache"), field_of(key, "eviction")
        shown = eviction not in ("", "none", "n/a")
        parts += [str(field_of(key, "read_pattern")), f"{cache}/{eviction}" if shown else cache]
        readers, clients = field_of(key, "readers"), field_of(key, "clients")
        if isinstance(clients, int) and clients > 0:
            parts += [series.clients_text(field_of(key, "nodes"), clients)]
        else:
            parts += [f"{readers} reader{'' if readers == 1 else 's'}"]
        parts += [f"ra {field_of(key, 'readahead')}"]
    return " ".join(str(part) for part in parts)


def point_label(key: tuple) -> str:
    """A point in words: ``lmdb 32px 1,000 images read whole cold/fadvise 1 reader ra on``."""
    return f"{series_of(key)} {context_label(key)}"


# --- A against B --------------------------------------------------------------------------


def ratio_interval(a: Point, b: Point) -> tuple[float, float, float]:
    """``[B low / A high, B high / A low]`` and the least coverage of the ratio of the
    medians, ``level A x level B``; NaN where a side has no interval."""
    if not (a.has_interval and b.has_interval) or a.low <= 0:
        return math.nan, math.nan, math.nan
    return b.low / a.high, b.high / a.low, a.level * b.level


def verdict(a: Point, b: Point) -> str:
    """B against A: faster or slower only when the two intervals do not overlap."""
    if not (a.has_interval and b.has_interval):
        return NO_VERDICT
    if b.high < a.low:
        return FASTER
    if b.low > a.high:
        return SLOWER
    return NO_CLEAR


def setting_differences(a: Point, b: Point) -> tuple[tuple[str, str, str], ...]:
    """(setting, A's values, B's values) of the settings both runs record that differ."""
    settings_b = dict(b.settings)
    return tuple(
        (name, value, settings_b[name])
        for name, value in a.settings
        if name in settings_b and settings_b[name] != value
    )


@dataclass(frozen=True)
class Comparison:
    """One point present in both runs."""

    key: tuple
    a: Point
    b: Point
    ratio: float
    ratio_low: float
    ratio_high: float
    ratio_level: float  # the least coverage of [ratio_low, ratio_high]
    verdict: str
    differences: tuple[tuple[str, str, str], ...] = ()


def compare_point(key: tuple, a: Point, b: Point) -> Comparison:
    ratio = b.median / a.median if a.median > 0 else math.nan
    low, high, level = ratio_interval(a, b)
    return Comparison(key, a, b, ratio, low, high, level, verdict(a, b), setting_differences(a, b))


def pair_verdict(first: Point, second: Point) -> str:
    """Within one run: ``FIRST`` or ``SECOND`` is faster (its interval wholly below the
    other's), ``TIE`` (overlap), or ``NO_INTERVAL`` (a point of one store)."""
    if not (first.has_interval and second.has_interval):
        return NO_INTERVAL
    if first.high < second.low:
        return FIRST
    if second.high < first.low:
        return SECOND
    return TIE


@dataclass(frozen=True)
class PairCheck:
    """Two series at one context, measured in both runs, and each run's verdict."""

    context: tuple  # the values of CONTEXT_KEYS
    first: str
    second: str
    in_a: str
    in_b: str
    points_a: tuple[Point, Point]
    points_b: tuple[Point, Point]

    @property
    def outcome(self) -> str:
        """``AGREE``, ``CONTRADICT``, ``ONE_RUN_CLEAR`` or ``NOT_COMPARED``."""
        verdicts = {self.in_a, self.in_b}
        if NO_INTERVAL in verdicts:
            return NOT_COMPARED
        if self.in_a == self.in_b:
            return AGREE
        return ONE_RUN_CLEAR if TIE in verdicts else CONTRADICT

    @property
    def clear(self) -> bool:
        """An interval in both runs and a clear verdict in at least one: counted in M."""
        return self.outcome != NOT_COMPARED and {self.in_a, self.in_b} != {TIE}

    def winner(self, in_run: str) -> str:
        return {FIRST: self.first, SECOND: self.second}.get(in_run, "")


def context_of(key: tuple) -> tuple:
    return tuple(field_of(key, name) for name in CONTEXT_KEYS)


def context_key(context: tuple) -> tuple:
    """A point key with the values of ``context`` and an empty series."""
    values = dict(zip(CONTEXT_KEYS, context, strict=True))
    return tuple(values.get(name, "") for name in KEYS)


def _by_context(points: Mapping[tuple, Point]) -> dict[tuple, dict[str, Point]]:
    grouped: dict[tuple, dict[str, Point]] = {}
    for key, point in points.items():
        grouped.setdefault(context_of(key), {})[series_of(key)] = point
    return grouped


def pair_checks(
    points_a: Mapping[tuple, Point], points_b: Mapping[tuple, Point]
) -> list[PairCheck]:
    """Every pair of series measured at one context in both runs, with both verdicts."""
    contexts_a, contexts_b = _by_context(points_a), _by_context(points_b)
    checks = []
    for context in sorted(
        set(contexts_a) & set(contexts_b), key=lambda c: tuple(map(_sortable, c))
    ):
        in_a, in_b = contexts_a[context], contexts_b[context]
        for first, second in combinations(sorted(set(in_a) & set(in_b)), 2):
            pair_a, pair_b = (in_a[first], in_a[second]), (in_b[first], in_b[second])
            checks.append(
                PairCheck(
                    context,
                    first,
                    second,
                    pair_verdict(*pair_a),
                    pair_verdict(*pair_b),
                    pair_a,
                    pair_b,
                )
            )
    return checks


@dataclass(frozen=True)
class RunComparison:
    """Everything ``imgbench compare`` reports."""

    points_a: dict[tuple, Point]
    points_b: dict[tuple, Point]
    common: list[Comparison]
    only_a: list[tuple]
    only_b: list[tuple]
    pairs: list[PairCheck] = field(default_factory=list)

    @property
    def contradictions(self) -> list[PairCheck]:
        return [pair for pair in self.pairs if pair.outcome == CONTRADICT]

    @property
    def clear_pairs(self) -> list[PairCheck]:
        return [pair for pair in self.pairs if pair.clear]


def compare_runs(rows_a: pd.DataFrame, rows_b: pd.DataFrame) -> RunComparison:
    """Both runs' points, compared where present in both; raises ``CompareInputError``
    when no point is."""
    points_a, points_b = run_points(rows_a), run_points(rows_b)
    shared = sorted(set(points_a) & set(points_b), key=sort_key)
    if not shared:
        raise CompareInputError(
            f"no point is in both runs (A has {len(points_a)}, B has {len(points_b)}): "
            "compare runs of the same config (methods, sizes, cutoffs, reads)"
        )
    common = [compare_point(key, points_a[key], points_b[key]) for key in shared]
    only_a = sorted(set(points_a) - set(points_b), key=sort_key)
    only_b = sorted(set(points_b) - set(points_a), key=sort_key)
    return RunComparison(
        points_a, points_b, common, only_a, only_b, pair_checks(points_a, points_b)
    )
