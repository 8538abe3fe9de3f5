"""Reads by many client processes (``clients`` >= 1, see ``experiment.rows``): the
summary's "Many clients" section, and how well each method's throughput holds as clients
are added.

A many-clients point is timed from the common start of its clients to the last one's
end; its images/s is every client's images over that time, its images/s per client that
divided by the clients. Both have a median and an interval over stores like every time
(``points``). How a method's throughput holds is its **scaling efficiency**, per store:
its per-client images/s at the most clients measured divided by its per-client images/s
at the fewest (with one client, that is the one client's images/s), both read from the
same store, one store being the independent unit; its median and order-statistics
interval over the stores (``stats.median_interval``). A method holds best only when its
interval lies wholly above every other's (``stats.separate``); points measured on a busy
machine are left out, as in every verdict.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.results import stats as st
from imgbench.results.busy import quiet_and_busy
from imgbench.results.markdown import and_list, markdown_table
from imgbench.results.series import clients_text, is_many_clients

# A read kind of the section: everything of a read but its clients.
KIND_KEYS = ["read_pattern", "readahead", "cache", "eviction"]
# A client configuration: nodes x per node; ordered by clients, then nodes.
CONFIG_KEYS = ["clients", "nodes"]


class Scaling(NamedTuple):
    """One kind of read's scaling efficiencies: from the fewest clients to the most."""

    fewest: tuple[int, int]  # (clients, nodes)
    most: tuple[int, int]
    candidates: list[st.Candidate]  # one per series measured at both, quiet
    busy: list[str]  # series left out: a point of theirs was measured on a busy machine
    unmatched: list[str]  # series measured at only one of the two configurations


def client_reads(frame: pd.DataFrame) -> pd.DataFrame:
    """The lines of ``frame`` (rows or statistics) that are reads by client processes."""
    return frame[(frame["operation"] == "read") & is_many_clients(frame)]


def config_text(config: tuple[int, int]) -> str:
    """``4 clients (2x2)``, ``1 client (1x1)``: a configuration, clients first."""
    clients, nodes = config
    layout = clients_text(nodes, clients).removesuffix(" clients")
    return f"{clients} client{'' if clients == 1 else 's'} ({layout})"


def _configs(frame: pd.DataFrame) -> list[tuple[int, int]]:
    pairs = frame[CONFIG_KEYS].drop_duplicates().itertuples(index=False, name=None)
    return sorted((int(clients), int(nodes)) for clients, nodes in pairs)


def _at_config(frame: pd.DataFrame, config: tuple[int, int]) -> pd.DataFrame:
    return frame[(frame["clients"] == config[0]) & (frame["nodes"] == config[1])]


def _select(frame: pd.DataFrame, key: dict) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for column, value in key.items():
        mask &= frame[column] == value
    return frame[mask]


def _store_per_client(rows: pd.DataFrame) -> pd.Series:
    """Each store's median images/s per client (``repeat`` -> value)."""
    values = pd.to_numeric(rows["images_per_s_per_client"], errors="coerce")
    return values.groupby(rows["repeat"]).median().dropna()


def scaling(rows: pd.DataFrame, points: pd.DataFrame) -> Scaling | None:
    """The scaling efficiency of each series between the fewest and the most clients of
    one kind of read: ``rows`` its timed rows, ``points`` its statistics (one line per
    series and configuration). None with fewer than two configurations."""
    configs = _configs(points)
    if len(configs) < 2:
        return None
    fewest, most = configs[0], configs[-1]
    candidates, busy, unmatched = [], [], []
    for series in sorted(points["series"].unique()):
        mine = points[points["series"] == series]
        ends = pd.concat([_at_config(mine, fewest), _at_config(mine, most)])
        if len(ends) < 2:
            unmatched.append(series)
            continue
        if len(quiet_and_busy(ends)[1]):
            busy.append(series)
            continue
        method, _, variant = series.partition(":")
        own = rows[(rows["method"] == method) & (rows["variant"] == (variant or "default"))]
        first = _store_per_client(_at_config(own, fewest))
        last = _store_per_client(_at_config(own, most))
        shared = first.index.intersection(last.index)
        efficiency = (last[shared] / first[shared]).tolist()
        if not efficiency:
            unmatched.append(series)
            continue
        low, high, level = st.median_interval(efficiency)
        median = float(pd.Series(efficiency).median())
        candidates.append(st.Candidate(series, median, low, high, level))
    return Scaling(fewest, most, candidates, busy, unmatched)


def _kept(c: st.Candidate) -> str:
    """``0.93 [0.90, 0.95]``: an efficiency with its interval (``(one store)`` without)."""
    if not st.has_interval(c):
        return f"{c.value:.2f} (one store)"
    return f"{c.value:.2f} [{c.low:.2f}, {c.high:.2f}]"


def _efficiency(c: st.Candidate) -> str:
    return f"{c.name} {_kept(c)}"


def _fewest_words(config: tuple[int, int]) -> str:
    if config[0] == 1:
        return "its 1-client throughput"
    return f"its per-client throughput at {config_text(config)}"


def scaling_verdict(found: Scaling) -> str:
    """How throughput holds as clients grow, in one sentence: the series whose scaling
    efficiency's interval lies wholly above every other's, else no clear difference."""
    most, fewest = config_text(found.most), _fewest_words(found.fewest)
    ranked = sorted(found.candidates, key=lambda c: -c.value)
    notes = []
    if found.busy:
        notes.append(f"{and_list(found.busy)} left out: busy")
    if found.unmatched:
        notes.append(f"{and_list(found.unmatched)} not measured at both")
    tail = f" ({'; '.join(notes)})" if notes else ""
    if not ranked:
        return f"No verdict on how throughput holds as clients grow{tail}."
    if len(ranked) == 1:
        only = ranked[0]
        return (
            f"Only {only.name} measured at both ends: it keeps {_kept(only)} of {fewest} "
            f"per client at {most}{tail}."
        )
    lone = [c.name for c in ranked if not st.has_interval(c)]
    every = ", ".join(_efficiency(c) for c in ranked)
    if lone:
        return (
            f"No verdict on how throughput holds as clients grow: {and_list(lone)} had one "
            f"store (no interval); per-client throughput at {most} against {fewest}: "
            f"{every}{tail}."
        )
    verdict = st.separate(ranked, higher_is_better=True)
    level = min(c.level for c in ranked)
    if verdict.clear:
        best = verdict.best
        others = ", ".join(_efficiency(c) for c in ranked if c is not best)
        return (
            f"Holds best as clients grow: **{best.name}** keeps {_kept(best)} of {fewest} "
            f"per client at {most}, against "
            f"{others} (intervals over stores, at least {level:.1%}){tail}."
        )
    return (
        "No clear difference in how throughput holds as clients grow: per-client "
        f"throughput at {most} against {fewest}: {every} (intervals over stores, at least "
        f"{level:.1%}){tail}."
    )


def _speed(value, low, high) -> str:
    if pd.isna(value):
        return "n/a"
    if pd.isna(low) or pd.isna(high):
        return f"{value:,.0f}"
    return f"{value:,.0f} [{low:,.0f}, {high:,.0f}]"


def _kind_table(points: pd.DataFrame) -> str:
    body = []
    ordered = points.sort_values(["series", *CONFIG_KEYS])
    for r in ordered.itertuples():
        busy = " (busy)" if bool(getattr(r, "busy", False)) else ""
        body.append(
            [
                r.series,
                config_text((int(r.clients), int(r.nodes))),
                _speed(r.median_images_per_s, r.ci_images_per_s_low, r.ci_images_per_s_high) + busy,
                _speed(
                    r.median_images_per_s_per_client,
                    r.ci_images_per_s_per_client_low,
                    r.ci_images_per_s_per_client_high,
                ),
            ]
        )
    header = ["method", "clients (nodes x per node)", "images/s, all clients"]
    return markdown_table([*header, "images/s per client"], body)


def _kinds(points: pd.DataFrame) -> list[dict]:
    keys = points[KIND_KEYS].drop_duplicates()
    keys = keys.assign(_p=keys["read_pattern"].map(vocabulary.pattern_rank))
    return keys.sort_values(["_p", *KIND_KEYS]).drop(columns="_p").to_dict("records")


def _kind_title(key: dict, reads: pd.DataFrame) -> str:
    parts = [str(key["read_pattern"])]
    if reads["readahead"].nunique() > 1:
        parts.append(f"readahead {key['readahead']}")
    cache = str(key["cache"])
    if reads.loc[reads["cache"] == vocabulary.COLD, "eviction"].nunique() > 1 and (
        cache == vocabulary.COLD
    ):
        cache += f" ({key['eviction']})"
    return ", ".join([*parts, cache])


def largest_client_cutoff(reads: pd.DataFrame) -> pd.DataFrame:
    """``reads`` (of one image size) at the largest cutoff that has reads by clients."""
    return reads[reads["cutoff"] == reads["cutoff"].max()]


def hosts_markdown(rows: pd.DataFrame) -> str:
    """Where the clients ran and how they were started, from the rows."""
    hosts = sorted(
        {
            host
            for cell in rows.get("client_hosts", pd.Series(dtype=object)).dropna()
            for host in str(cell).split(";")
            if host
        }
    )
    launches = rows.get("client_launch", pd.Series(dtype=object)).dropna().astype(str)
    counts = launches[launches != ""].value_counts().sort_index()
    where = (
        f"Clients ran on {len(hosts)} host(s): {and_list(hosts)}"
        if hosts
        else "The clients' hosts were not recorded"
    )
    launched = {"local": "as processes of the job's machine", "srun": "by srun over the nodes"}
    how = ", ".join(
        f"{launched.get(launch, launch)} ({count} timed reads)" for launch, count in counts.items()
    )
    started = f"; started {how}" if how else "; how they were started was not recorded"
    return f"{where}{started}.\n\n"


SECTION_NOTE = (
    "Reads by client processes: each client is its own process with one reader, opens the "
    "store itself and reads its share of the epoch's requests; all are released together, "
    "and a point's time runs from that common start until the last client finished. "
    "Images/s, all clients: the images every client read over that time; per client: that "
    "divided by the clients. Medians over stores with their interval in brackets (none with "
    "one store). A method's scaling efficiency, per store: its per-client images/s at the "
    "most clients divided by its per-client images/s at the fewest, both from that store; "
    "the method holding best is named only when the interval of its efficiency over the "
    "stores lies wholly above every other method's. Busy points are left out of that "
    "verdict.\n\n"
)


def many_clients_markdown(rows: pd.DataFrame, stats: pd.DataFrame) -> str:
    """Per image size, at its largest cutoff with reads by clients, a table per kind of
    read (pattern, readahead, cache): each series' images/s in all and per client at each
    client configuration, and which series' throughput holds best as clients grow
    (``scaling_verdict``); where the clients ran. ``""`` without such reads."""
    reads = client_reads(stats)
    if reads.empty:
        return ""
    timed = client_reads(rows)
    parts = ["\n## Many clients (largest cutoff of each size with clients)\n\n", SECTION_NOTE]
    parts.append(hosts_markdown(timed))
    for size in sorted(reads["image_size"].unique()):
        here = largest_client_cutoff(reads[reads["image_size"] == size])
        cutoff = int(here["cutoff"].iloc[0])
        mine = timed[(timed["image_size"] == size) & (timed["cutoff"] == cutoff)]
        for key in _kinds(here):
            points = _select(here, key)
            parts.append(f"### {size}x{size}, {cutoff:,} images: {_kind_title(key, reads)}\n\n")
            parts.append(_kind_table(points))
            found = scaling(_select(mine, key), points)
            if found is None:
                parts.append("\nOne client configuration measured: no scaling to judge.\n\n")
            else:
                parts.append(f"\n{scaling_verdict(found)}\n\n")
    return "".join(parts)
