"""The run's summary (``summary.md``): an introduction, the tables with their verdicts
(``tables``, ``footprint``), the bytes the reads took from the device, stores against
memory, the interval check, the quiet-machine check, measurement hygiene and the
environment. Each section returns its markdown (``""`` when it has nothing to say);
``summary_markdown`` joins them.
"""

from __future__ import annotations

import pandas as pd

from imgbench.experiment import rigor, vocabulary
from imgbench.results import busy as busy_rule
from imgbench.results import stats as st
from imgbench.results.clients import many_clients_markdown
from imgbench.results.codecs import codecs_markdown
from imgbench.results.footprint import bytes_per_image_markdown, memory_markdown
from imgbench.results.markdown import markdown_table, number, percent, ratio, seconds
from imgbench.results.points import keyed
from imgbench.results.series import BASELINE, clients_text, is_many_clients
from imgbench.results.tables import (
    PATTERN_ORDER,
    cold_warm_markdown,
    format_choice_markdown,
    methods_markdown,
    patterns_markdown,
    point_tables_markdown,
    readers_or_clients,
)
from imgbench.system.units import human_bytes

POINT_HEADER = ["method", "size", "images", "point"]


def _point_name(r) -> str:
    """``store`` or ``cold read (fadvise), shuffled, readahead off, 2 reader(s)`` (``2x2
    clients`` for a read by client processes)."""
    if r.operation == "store":
        return "store"
    cache = f"{r.cache} read" + (f" ({r.eviction})" if r.cache == "cold" else "")
    return f"{cache}, {r.read_pattern}, readahead {r.readahead}, {readers_or_clients(r)}"


def _point_cells(r) -> list[str]:
    return [r.series, f"{r.image_size}x{r.image_size}", f"{r.cutoff:,}", _point_name(r)]


def _all_missing(frame: pd.DataFrame, column: str) -> bool:
    return bool(frame[column].isna().all())


def rigor_markdown(rows: pd.DataFrame) -> str:
    """Which ``rigor`` produced the rows, and what its stores per point can claim."""
    named = sorted(rows["rigor"].dropna().unique()) if "rigor" in rows else []
    stores = int(rows["repeat"].nunique())
    claim = f"{stores} store(s) per point: {rigor.interval_claim(stores)}"
    if not named:
        return f"**Rigor**: not recorded ({claim}).\n\n"
    return f"**Rigor: {' and '.join(named)}** ({claim}).\n\n"


def introduction_markdown(rows: pd.DataFrame, stats: pd.DataFrame) -> str:
    n_low, n_high = int(stats["n"].min()), int(stats["n"].max())
    n_text = f"{n_low}" if n_low == n_high else f"{n_low}–{n_high}"
    return rigor_markdown(rows) + (
        f"{len(rows)} timed operations: {int(rows['repeat'].nunique())} independent "
        f"store(s) per point, each timed up to {int(rows['inner_repeat'].max())} time(s) in "
        f"its job; n = {n_text} per point. Times are medians in seconds (lower is better); "
        f"ratios are a method's median divided by the png or {BASELINE} median at the same "
        "point. A point's median is the median of its store medians, and carries a "
        "distribution-free interval from order statistics of those store medians, the "
        "independent units (95 % with 6 or more stores, else their min–max with its true "
        "coverage, as written: 75 % for 3 stores; one store gives none). A method is named "
        "fastest only when its interval lies clear of every other's; otherwise the summary "
        "says there is no clear difference, or no verdict where a series had one store. "
        "Tables per cutoff show stores and whole-store reads by one reader (the article's "
        "experiment).\n"
    )


# --- bytes from the device, stores against memory ------------------------------------------


def _what_cold_meant(rows: pd.DataFrame) -> str:
    reads = rows[rows["operation"] == "read"]
    cold = reads[reads["cache"] == "cold"]
    counts = cold["eviction"].value_counts().sort_index()
    modes = ", ".join(f"{mode} ({count} timed reads)" for mode, count in counts.items())
    text = (
        f"What cold meant: the store's pages were evicted before the clock with {modes}; "
        f"cold reads started with at most {percent(cold['cached_fraction'].max())} of the "
        f"store in the page cache (median {percent(cold['cached_fraction'].median())}).\n"
    )
    warm = reads[reads["cache"] == "warm"]
    if len(warm):
        text += (
            "Warm reads started with at least "
            f"{percent(warm['cached_fraction'].min())} of the store in the page cache.\n"
        )
    return text


DEVICE_NOTE = (
    "\nDevice: bytes the reader processes read from the storage device in the timed "
    "region (/proc/self/io, summed over readers); requested: the pixel bytes the read "
    "asked for. Medians over timed runs. Above 1x the device delivered more than was "
    "asked for (readahead, metadata, page granularity).\n"
)


def _device_bytes_of_size(here: pd.DataFrame, size: int, whole_device: bool) -> str:
    """One image size's cold reads at its largest cutoff: device bytes against requested
    and against the store's size."""
    several = here["eviction"].nunique() > 1
    clients = bool(is_many_clients(here).any())
    header = ["method", "pattern", "readahead", "readers"] + (["clients"] if clients else [])
    header += ["eviction"] if several else []
    header += ["device", "requested", "device / requested", "device / on disk (whole)"]
    header += ["block device (all)"] if whole_device else []
    here = here.assign(_p=here["read_pattern"].map(PATTERN_ORDER))
    body = []
    order = ["series", "_p", "readahead", "clients", "nodes", "readers"]
    for r in here.sort_values(order).itertuples():
        on_disk = r.median_bytes_on_disk if r.read_pattern == vocabulary.WHOLE else None
        body.append(
            [r.series, r.read_pattern, r.readahead, r.readers]
            + ([clients_text(r.nodes, r.clients) if r.clients > 0 else ""] if clients else [])
            + ([r.eviction] if several else [])
            + [
                human_bytes(r.median_device_read_bytes),
                human_bytes(r.median_bytes_requested),
                ratio(r.median_device_read_bytes, r.median_bytes_requested),
                ratio(r.median_device_read_bytes, on_disk) if on_disk else "",
            ]
            + ([human_bytes(r.median_disk_read_bytes)] if whole_device else [])
        )
    title = f"\n### {size}x{size}, {int(here['cutoff'].max()):,} images\n\n"
    return title + markdown_table(header, body)


def device_bytes_markdown(stats: pd.DataFrame, rows: pd.DataFrame) -> str:
    cold = stats[(stats["operation"] == "read") & (stats["cache"] == "cold")]
    if cold.empty:
        return ""
    parts = ["\n## Bytes from the device (cold reads, largest cutoff of each size)\n\n"]
    parts += [_what_cold_meant(rows), DEVICE_NOTE]
    whole_device = not _all_missing(cold, "median_disk_read_bytes")
    for size in sorted(cold["image_size"].unique()):
        here = cold[cold["image_size"] == size]
        largest = here[here["cutoff"] == here["cutoff"].max()]
        parts.append(_device_bytes_of_size(largest, size, whole_device))
    return "".join(parts)


def _ram_bytes(environments: dict) -> float | None:
    sizes = [e.get("ram_bytes") for e in environments.values() if e.get("ram_bytes")]
    return float(min(sizes)) if sizes else None


def store_vs_memory_markdown(stats: pd.DataFrame, disk: pd.DataFrame, environments: dict) -> str:
    """Whole-store reads of stores at least half the machine's memory: how much of the
    store was cached before the read and how much came from the device."""
    ram = _ram_bytes(environments)
    reads = stats[(stats["operation"] == "read") & (stats["read_pattern"] == vocabulary.WHOLE)]
    if ram is None or reads.empty:
        return ""
    on_disk = keyed(disk, ["series", "image_size", "cutoff"])
    body = []
    for r in reads.sort_values(["image_size", "cutoff", "series", "cache"]).itertuples():
        store = on_disk.get((r.series, r.image_size, r.cutoff))
        if store is None or store.bytes_on_disk < ram / 2:
            continue
        body.append(
            [
                r.series,
                f"{r.image_size}x{r.image_size}",
                f"{r.cutoff:,}",
                human_bytes(store.bytes_on_disk),
                f"{store.bytes_on_disk / ram:.2f}",
                r.cache,
                percent(r.median_cached_fraction),
                human_bytes(r.median_device_read_bytes),
                seconds(r.median_s),
                f"{r.median_images_per_s:,.0f}",
            ]
        )
    if not body:
        return ""
    header = ["method", "size", "images", "on disk", "store / RAM", "cache", "cached before"]
    return (
        "\n## Stores against memory (whole-store reads)\n\n"
        f"Stores of at least half this machine's memory ({human_bytes(ram)}). A warm read "
        "of a store larger than the page cache can keep finds only part of it cached (the "
        "share before the read is given) and reads the rest from the device; a cold read "
        "of such a store comes from the device whatever the eviction.\n\n"
        + markdown_table(header + ["from device", "time", "images/s"], body)
    )


# --- the interval check ------------------------------------------------------------------

INTERVAL_RULE = (
    "A point's median is the median of its store medians, and its interval comes from its "
    "independent units alone, its stores: the timings of one store share its placement on "
    "disk, its process and its moment on the machine, so more timings inside a store add "
    "no coverage. The interval is distribution-free, from order statistics of the s store "
    "medians: those at ranks j and s+1-j, the narrowest such pair covering the median a "
    "new store would give with at least 95 %. Below 6 stores no pair reaches 95 %: the "
    "interval is the min–max of the store medians, with its true coverage (2 stores 50 %, "
    "3 stores 75 %, 4 stores 87.5 %, 5 stores 93.8 %); one store gives no interval and "
    "no verdict.\n\n"
)


def interval_check_markdown(stats: pd.DataFrame, threshold: float) -> str:
    reach = f"±{threshold * 100:g} %"
    parts = [f"\n## Interval check (95 % interval of the median within {reach})\n\n"]
    parts.append(INTERVAL_RULE)
    full = stats["ci_level"] >= st.LEVEL
    narrow = stats["ci_halfwidth_rel"] <= threshold  # False where there is no interval
    parts.append(
        f"{int((full & narrow).sum())} of {len(stats)} points have a 95 % interval within "
        f"{reach} of the median.\n"
    )
    lower = narrow & ~full
    if lower.any():
        parts.append(
            f"{int(lower.sum())} more have an interval within {reach} that covers with "
            "less than 95 %.\n"
        )
    parts.append(_wide_intervals(stats[stats["ci_level"].notna() & ~narrow]))
    parts.append(_below_full_coverage(stats[~full]))
    return "".join(parts)


def _wide_intervals(wide: pd.DataFrame) -> str:
    if wide.empty:
        return ""
    return f"\n{len(wide)} point(s) reach further; read their medians with care:\n\n" + (
        markdown_table(
            [*POINT_HEADER, "stores", "n", "median", "interval", "coverage", "reach"],
            [
                _point_cells(r)
                + [
                    r.stores,
                    r.n,
                    seconds(r.median_s),
                    f"{r.ci_low:.4g}–{r.ci_high:.4g} s",
                    f"{r.ci_level:.1%}",
                    f"±{r.ci_halfwidth_rel:.1%}",
                ]
                for r in wide.itertuples()
            ],
        )
    )


def _below_full_coverage(few: pd.DataFrame) -> str:
    """How many points lack a 95 % interval, by their number of stores."""
    if few.empty:
        return ""
    parts = [
        f"\n{len(few)} point(s) have no 95 % interval: too few stores (raise repeats so a "
        "point has at least 6; more timings inside a job do not help):\n\n"
    ]
    lone = few[few["ci_level"].isna()]
    if len(lone):
        parts.append(f"- {len(lone)} point(s): one store, so no interval and no verdict\n")
    known = few[few["ci_level"].notna()]
    for (stores, level), group in known.groupby(["stores", "ci_level"], sort=True):
        parts.append(f"- {len(group)} point(s): min–max of {stores} store medians, {level:.1%}\n")
    return "".join(parts)


# --- the quiet-machine check -------------------------------------------------------------

BUSY_RULE = (
    "A timed operation counts as busy when others ran on the machine meanwhile: the CPU "
    "time of everything outside the job's own process tree (the job, its reader processes "
    "and their threads are its own; other jobs, other users, daemons and kernel threads "
    "are not) exceeded {cores:g} of a core's time over the region by more than the "
    "measurement's resolution (in timings.csv: `foreign_cpu_seconds` less "
    "`foreign_cpu_resolution_seconds` above {cores:g} x `foreign_cpu_span_seconds`). A "
    "point is busy when any of its timed operations was. Busy points are left out of every "
    "verdict and of the fastest in the format table, which name them; the tables keep "
    "their medians, marked (busy).\n\n"
)


def _load_rule_note(rows: pd.DataFrame, busy: dict) -> str:
    """The former rule, for rows recorded before foreign CPU time was measured."""
    by_load = busy_rule.judged_by_load(rows)
    if not by_load.any():
        return ""
    old = rows[by_load]
    text = (
        f"{int(by_load.sum())} of {len(rows)} timed operations carry no foreign CPU time "
        "(recorded before it was measured): they are judged by the former rule, a 1-minute "
        f"load average above {busy['load_per_core']:g} x the host's cores or CPU pressure "
        f"(PSI some avg10) above {busy['cpu_pressure_pct']:g} % while the job ran fewer "
        "readers than cores. Both count the job's own processes, and the load is a "
        "minute's average that carries the previous job, so that rule also flags quiet "
        "runs.\n"
    )
    if _all_missing(old, "load_1min") and _all_missing(old, "cpu_pressure_pct"):
        text += "No load average or pressure was recorded for them: they could not be judged.\n"
    elif _all_missing(old, "cpu_pressure_pct"):
        text += "CPU pressure was not recorded for them (no PSI): only the load was checked.\n"
    return text


def _foreign_cpu_note(rows: pd.DataFrame, busy: dict) -> str:
    """What others ran over the judged regions, and how many were too short to judge."""
    judged = rows[~busy_rule.judged_by_load(rows)]
    if judged.empty:
        return ""
    cores = busy_rule.foreign_cpu_cores(judged)
    resolution = busy_rule.numbers(judged, "foreign_cpu_resolution_seconds") * 1e3
    text = (
        f"\nOthers' CPU time over the {len(judged)} judged timed operations: median "
        f"{number(cores.median(), '.2f')}, highest {number(cores.max(), '.2f')} "
        f"of a core; resolution {number(resolution.min(), '.1f')}–"
        f"{number(resolution.max(), '.1f')} ms per region.\n"
    )
    short = busy_rule.too_short_to_judge(judged, busy)
    if short.any():
        text += (
            f"{int(short.sum())} of them were too short to judge (even another process "
            "running a whole core throughout would not exceed the threshold by more than "
            "the resolution): they count as quiet.\n"
        )
    return text


def _busy_points_table(flagged: pd.DataFrame) -> str:
    return markdown_table(
        [*POINT_HEADER, "max foreign CPU", "max load", "cores", "max CPU pressure", "judged by"],
        [
            _point_cells(r)
            + [
                number(r.max_foreign_cpu_cores, ".2f", " cores"),
                number(r.max_load_1min, ".2f"),
                number(r.max_cpu_count, ".0f"),
                number(r.max_cpu_pressure_pct, ".1f", " %"),
                "load, pressure" if r.judged_by_load else "foreign CPU",
            ]
            for r in flagged.itertuples()
        ],
    )


def _context_note(rows: pd.DataFrame) -> str:
    """Load and pressure, recorded as context; others' reads from the store's device."""
    text = (
        "\nLoad and pressure are recorded as context but no longer decide where foreign CPU "
        "time was measured (they count the job itself): highest 1-minute load "
        f"{number(rows['load_1min'].max(), '.2f')} on "
        f"{number(rows['cpu_count'].max(), '.0f')} cores, highest CPU pressure "
        f"{number(rows['cpu_pressure_pct'].max(), '.1f', ' %')}. I/O pressure is "
        f"recorded (highest {number(rows['io_pressure_pct'].max(), '.1f', ' %')}) but "
        "not used for the flag: our own cold reads cause it.\n"
    )
    foreign_bytes = busy_rule.numbers(rows, "foreign_device_read_bytes")
    if foreign_bytes.notna().any():
        text += (
            "Others read at most "
            f"{human_bytes(max(0.0, foreign_bytes.max()))} from the store's block device "
            "during a timed region (its reads less the job's own).\n"
        )
    return text


def quiet_machine_markdown(stats: pd.DataFrame, rows: pd.DataFrame, busy: dict) -> str:
    parts = ["\n## Quiet machine\n\n", BUSY_RULE.format(cores=busy["foreign_cpu_cores"])]
    parts += [_load_rule_note(rows, busy), _foreign_cpu_note(rows, busy)]
    flagged = stats[stats["busy"]]
    if flagged.empty:
        parts.append("\nNo point was measured on a busy machine.\n")
    else:
        parts.append(
            f"\n{len(flagged)} of {len(stats)} points were measured on a busy machine and are "
            "left out of the verdicts and the format table:\n\n"
        )
        parts.append(_busy_points_table(flagged))
    parts.append(_context_note(rows))
    return "".join(parts)


# --- hygiene and environment -------------------------------------------------------------


def hygiene_markdown(rows: pd.DataFrame) -> str:
    parts = ["\n## Measurement hygiene\n\n"]
    clashes = busy_rule.overlapping_timings(rows)
    if clashes:
        parts.append(
            f"**{len(clashes)} timed operations overlapped on the same host**; the figures "
            "may be distorted (run with the default profile, or `--resources timing_slot=1`):\n\n"
        )
        parts += [f"- {first} / {second}\n" for first, second in clashes[:20]]
        parts.append("\n")
    else:
        parts.append("No two timed operations overlapped on the same host.\n")
    stores = rows[rows["operation"] == "store"]
    if len(stores):
        counts = stores["fsync"].astype(str).value_counts().sort_index()
        strategies = ", ".join(f"{name} ({count} timed stores)" for name, count in counts.items())
        write_share = (stores["write_seconds"] / stores["seconds"]).median()
        flush_share = (stores["flush_seconds"] / stores["seconds"]).median()
        parts.append(
            f"Stores made durable with (fsync): {strategies}. Median share of store time: "
            f"writing {percent(write_share)}, flushing {percent(flush_share)}.\n"
        )
    parts.append("GC disabled during timed regions.\n")
    return "".join(parts)


def environment_markdown(environments: dict) -> str:
    parts = ["\n## Environment\n\n"]
    for env_id, record in sorted(environments.items()):
        parts.append(
            f"- `{env_id}`: {record.get('host')}, {record.get('cpu_model')} "
            f"({record.get('cpu_count')} cores), "
            f"{human_bytes(record.get('ram_bytes') or float('nan'))} RAM, "
            f"{record.get('os')} {record.get('kernel')}, store on {record.get('store_fs_type')} "
            f"at {record.get('store_mount')}, Python {record.get('python')}, "
            f"commit {record.get('git_commit')}\n"
        )
    return "".join(parts)


# --- the summary ---------------------------------------------------------------------------


def summary_markdown(
    rows: pd.DataFrame,
    stats: pd.DataFrame,
    disk: pd.DataFrame,
    environments: dict,
    interval_threshold: float,
    busy: dict | None = None,
    memory: pd.DataFrame | None = None,
) -> str:
    """The short report: winners or ties per point, ratios to png and the baseline,
    patterns, many clients, codecs, device bytes, memory, interval check, quiet-machine
    check, hygiene, environment."""
    sections = [
        "# Image storage benchmark: summary\n\n",
        introduction_markdown(rows, stats),
        "\n" + methods_markdown(stats),
        format_choice_markdown(stats, disk),
        point_tables_markdown(stats, disk),
        cold_warm_markdown(stats),
        patterns_markdown(stats),
        many_clients_markdown(rows, stats),
        codecs_markdown(rows, stats, disk),
        device_bytes_markdown(stats, rows),
        store_vs_memory_markdown(stats, disk, environments),
    ]
    if memory is not None and len(memory):
        sections.append("\n" + memory_markdown(memory))
    if disk["image_size"].nunique() > 1 or disk["variant"].nunique() > 1:
        sections.append("\n" + bytes_per_image_markdown(disk))
    sections += [
        interval_check_markdown(stats, interval_threshold),
        quiet_machine_markdown(stats, rows, busy_rule.busy_thresholds(busy)),
        hygiene_markdown(rows),
        environment_markdown(environments),
    ]
    return "".join(sections)
