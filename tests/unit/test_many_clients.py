"""clients: reads by many client processes through loading, statistics, the summary's
tables and "Many clients" section, and imgbench compare."""

from __future__ import annotations

import csv
import statistics

import pandas as pd
import pytest
from clients_fixtures import (
    CONFIGS,
    HOLDS,
    IMAGES,
    ONE_CLIENT,
    STORE_SCALE,
    TIED,
    client_rows,
    expected_efficiency,
)
from compare_fixtures import RUN_A, run_rows
from results_fixtures import (
    make_rows,
    markdown_section,
    pattern_rows,
    summary,
    table_body,
    write_rows,
)

from imgbench.experiment.rows import ROW_FIELDS
from imgbench.experiment.rows import write_rows as write_job_rows
from imgbench.results import clients, compare, footprint, load, matching, points


def tables_of(tmp_path, rows: list[dict]):
    loaded = load.load_rows(write_rows(rows, tmp_path / "rows"))
    return loaded, points.summarise(loaded), footprint.disk_usage_table(loaded)


def client_stats(stats: pd.DataFrame) -> pd.DataFrame:
    return stats[stats["clients"] > 0]


# --- loading ------------------------------------------------------------------------------


def test_rows_written_before_clients_existed_load_as_reads_by_the_job(tmp_path):
    """An old timings file lacks nodes, clients and images_per_s_per_client: its reads are
    the job's own (1 node, 0 clients), its stores too."""
    old_fields = [f for f in ROW_FIELDS if not f.startswith("client") and f != "nodes"]
    old_fields.remove("images_per_s_per_client")
    path = tmp_path / "old.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=old_fields, extrasaction="ignore")
        writer.writeheader()
        for item in make_rows()[:20]:
            writer.writerow({k: ("" if pd.isna(v) else v) for k, v in item.items()})
    rows = load.load_rows([path])
    assert set(rows["operation"]) == {"store", "read"}
    assert rows["nodes"].tolist() == [1] * 20 and rows["clients"].tolist() == [0] * 20
    assert rows["images_per_s_per_client"].isna().all()
    stats = points.summarise(rows)
    assert set(stats["clients"]) == {0} and set(stats["nodes"]) == {1}
    assert stats["median_images_per_s_per_client"].isna().all()
    # the same for compare, which reads timings.csv itself
    run = matching.load_run(path)
    assert run["clients"].eq(0).all() and run["nodes"].eq(1).all()


def test_empty_cells_take_the_defaults_and_per_client_speed_is_derived():
    frame = pd.DataFrame(
        {
            "nodes": [float("nan"), 2.0, 1.0],
            "clients": [float("nan"), 4.0, 0.0],
            "images_per_s": [100.0, 400.0, 50.0],
        }
    )
    filled = load.with_defaults(frame)
    assert filled["nodes"].tolist() == [1, 2, 1]
    assert filled["clients"].tolist() == [0, 4, 0]
    assert filled["images_per_s_per_client"].iloc[1] == pytest.approx(100.0)
    assert filled[["images_per_s_per_client"]].iloc[[0, 2]].isna().all().all()
    pd.testing.assert_frame_equal(load.with_defaults(filled), filled)  # idempotent


# --- series and statistics ----------------------------------------------------------------


def test_forked_readers_and_clients_are_different_points(tmp_path):
    """A shuffled cold read by the job's one reader and one by 1 client: the same in every
    coordinate but clients, never one point."""
    forked = [r for r in pattern_rows() if r["read_pattern"] == "shuffled"]
    forked = [{**r, "readers": 1} for r in forked if r["method"] in ONE_CLIENT]
    one_client = client_rows(configs=((1, 1),))
    rows, stats, _ = tables_of(tmp_path, forked + one_client)
    shuffled = stats[stats["read_pattern"] == "shuffled"]
    assert sorted(zip(shuffled["method"], shuffled["clients"], strict=True)) == [
        ("npy", 0),
        ("npy", 1),
        ("png", 0),
        ("png", 1),
    ]
    assert (shuffled["n"] == 3).all()
    npy = shuffled[shuffled["method"] == "npy"].set_index("clients")
    # forked: 100 images in 1 s; one client: ONE_CLIENT images/s
    assert npy.loc[0, "median_images_per_s"] == pytest.approx(100.0)
    assert npy.loc[1, "median_images_per_s"] == pytest.approx(ONE_CLIENT["npy"])
    assert pd.isna(npy.loc[0, "median_images_per_s_per_client"])


def test_stats_of_images_per_s_and_per_client_over_stores(tmp_path):
    _, stats, _ = tables_of(tmp_path, client_rows())
    mine = client_stats(stats).set_index(["method", "nodes", "clients"])
    for method, one in ONE_CLIENT.items():
        for nodes, per_node in CONFIGS:
            count = nodes * per_node
            kept = HOLDS[method].get(count, 1.0)
            store_values = sorted(
                one * scale * kept * (1 + (d if count == 4 else 0.0))
                for scale, d in zip(STORE_SCALE, (0.01, -0.01, 0.0), strict=True)
            )
            point = mine.loc[(method, nodes, count)]
            assert point["median_images_per_s_per_client"] == pytest.approx(
                statistics.median(store_values)
            )
            # 3 stores: min-max of the store medians at 75 %
            assert point["ci_images_per_s_per_client_low"] == pytest.approx(store_values[0])
            assert point["ci_images_per_s_per_client_high"] == pytest.approx(store_values[-1])
            assert point["ci_images_per_s_per_client_level"] == pytest.approx(0.75)
            assert point["median_images_per_s"] == pytest.approx(
                count * statistics.median(store_values)
            )
            assert point["ci_images_per_s_low"] == pytest.approx(count * store_values[0])
            assert point["median_s"] == pytest.approx(
                IMAGES / (count * statistics.median(store_values))
            )


# --- the summary ----------------------------------------------------------------------------


def many_clients_section(tmp_path, rows) -> str:
    loaded, stats, disk = tables_of(tmp_path, make_rows() + rows)
    return markdown_section(summary(loaded, stats, disk), "## Many clients")


def test_the_method_whose_throughput_holds_best_is_named(tmp_path):
    section = many_clients_section(tmp_path, client_rows(HOLDS))
    npy = expected_efficiency(HOLDS, "npy")
    png = expected_efficiency(HOLDS, "png")
    assert (
        f"Holds best as clients grow: **npy** keeps {statistics.median(npy):.2f} "
        f"[{npy[0]:.2f}, {npy[-1]:.2f}] of its 1-client throughput per client at 4 clients "
        f"(2x2), against png {statistics.median(png):.2f} [{png[0]:.2f}, {png[-1]:.2f}]"
    ) in section
    assert (
        "Clients ran on 2 host(s): node1 and node2; "
        "started by srun over the nodes (18 timed reads)." in (section)
    )
    assert "### 32x32, 100 images: shuffled, cold" in section
    body = {(cells[0], cells[1]): cells[2:] for cells in table_body(section)}
    assert set(body) == {
        (method, f"{n * k} client{'s' if n * k > 1 else ''} ({n}x{k})")
        for method in ONE_CLIENT
        for n, k in CONFIGS
    }
    total, per_client = body[("png", "4 clients (2x2)")]
    expected = ONE_CLIENT["png"] * HOLDS["png"][4]
    assert per_client.startswith(f"{expected:,.0f} [")
    assert total.startswith(f"{4 * expected:,.0f} [")


def test_overlapping_efficiencies_are_no_clear_difference(tmp_path):
    section = many_clients_section(tmp_path, client_rows(TIED))
    assert "No clear difference in how throughput holds as clients grow" in section
    assert "Holds best" not in section and "**" not in section.split("|")[-1]
    npy, png = expected_efficiency(TIED, "npy"), expected_efficiency(TIED, "png")
    assert f"npy {statistics.median(npy):.2f} [{npy[0]:.2f}, {npy[-1]:.2f}]" in section
    assert f"png {statistics.median(png):.2f} [{png[0]:.2f}, {png[-1]:.2f}]" in section


def test_a_busy_method_is_left_out_of_the_scaling_verdict(tmp_path):
    section = many_clients_section(tmp_path, client_rows(HOLDS, busy={"npy"}))
    assert "Holds best" not in section
    assert "Only png measured at both ends" in section
    assert "(npy left out: busy)" in section
    assert "(busy)" in section.split("Only png")[0]  # its row in the table is marked


def test_one_store_gives_no_scaling_verdict(tmp_path):
    one_store = [r for r in client_rows(HOLDS) if r["repeat"] == 1]
    section = many_clients_section(tmp_path, one_store)
    assert "No verdict on how throughput holds as clients grow" in section
    assert "npy and png had one store (no interval)" in section


def test_scaling_starts_from_the_fewest_clients_measured(tmp_path):
    """Without the 1-client baseline the efficiency is against 2 clients' per-client
    images/s."""
    section = many_clients_section(tmp_path, client_rows(HOLDS, configs=((1, 2), (2, 2))))
    ratio = HOLDS["npy"][4] / HOLDS["npy"][2]
    assert (
        f"**npy** keeps {ratio:.2f} [" in section
        and "of its per-client throughput at 2 clients (1x2) per client at 4 clients (2x2)"
        in section
    )


def test_format_table_gains_a_row_per_clients_configuration(tmp_path):
    loaded, stats, disk = tables_of(tmp_path, make_rows() + client_rows(TIED))
    section = markdown_section(summary(loaded, stats, disk), "## Which format for which")
    body = {cells[0]: cells[1:] for cells in table_body(section)}
    reads = list(body)
    assert reads == [
        "whole, 1 reader(s), cold",
        "whole, 1 reader(s), warm",
        "shuffled, 1x1 clients, cold",
        "shuffled, 1x2 clients, cold",
        "shuffled, 2x2 clients, cold",
    ]
    # npy's time at 4 clients: 100 images / (4 x 900 images/s), clear of png's
    npy_4 = IMAGES / (4 * ONE_CLIENT["npy"] * TIED["npy"][4])
    assert body["shuffled, 2x2 clients, cold"][0].startswith(f"**npy** {npy_4:.4g} s [")


def test_format_table_ties_clients_reads_whose_intervals_overlap(tmp_path):
    close = dict(ONE_CLIENT)
    rows = client_rows(TIED)
    for item in rows:  # png as fast as npy at 1 client: their intervals overlap
        if item["method"] == "png":
            scale = close["npy"] / close["png"] * (1.005 if item["clients"] == 1 else 1.0)
            item["seconds"] /= scale
            item["images_per_s"] *= scale
            item["images_per_s_per_client"] *= scale
    loaded, stats, disk = tables_of(tmp_path, make_rows() + rows)
    section = markdown_section(summary(loaded, stats, disk), "## Which format for which")
    body = {cells[0]: cells[1:] for cells in table_body(section)}
    assert body["shuffled, 1x1 clients, cold"][0].startswith("no clear winner: ")


def test_without_clients_the_summary_has_no_clients_words(tables):
    rows, stats, disk = tables
    text = summary(rows, stats, disk)
    assert "clients" not in text and "Many clients" not in text
    assert clients.many_clients_markdown(rows, stats) == ""


# --- compare ---------------------------------------------------------------------------------


def test_compare_a_run_without_clients_with_one_with_them(tmp_path):
    """A's rows predate the columns; B has the same points and reads by clients: the
    common points match, B's clients points are only in B, and nothing breaks."""
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    old = [f for f in ROW_FIELDS if f not in ("nodes", "clients") and not f.startswith("client")]
    old.remove("images_per_s_per_client")
    rows_a = run_rows(RUN_A)
    run_a.mkdir()
    pd.DataFrame(rows_a)[old].to_csv(run_a / "timings.csv", index=False)
    rows_b = run_rows(RUN_A)
    many = []
    for nodes, per_node in ((1, 1), (2, 2)):
        for item in run_rows({("npy", "cold"): [0.1, 0.11, 0.12]}):
            many.append({**item, "read_pattern": "shuffled", "nodes": nodes})
            many[-1]["clients"] = nodes * per_node
    write_job_rows(rows_b + many, run_b / "timings.csv")
    text = compare.compare(run_a, run_b, csv=tmp_path / "points.csv")
    result = matching.compare_runs(matching.load_run(run_a), matching.load_run(run_b))
    assert len(result.common) == len(result.points_a) == len(RUN_A)
    assert result.only_a == [] and len(result.only_b) == 2
    assert "Only in B (2 points):" in text
    assert "npy 32px 100 images read shuffled cold/fadvise 1x1 clients ra on" in text
    assert "npy 32px 100 images read shuffled cold/fadvise 2x2 clients ra on" in text
    table = pd.read_csv(tmp_path / "points.csv")
    only_b = table[table["verdict"] == matching.ONLY_B]
    assert sorted(only_b["clients"]) == [1, 4] and sorted(only_b["nodes"]) == [1, 2]
    assert text.rstrip().endswith("verdicts")


def test_clients_points_of_two_runs_match_by_nodes_and_clients(tmp_path):
    rows_a = load.load_rows(write_rows(client_rows(HOLDS), tmp_path / "a"))
    rows_b = load.load_rows(write_rows(client_rows(TIED), tmp_path / "b"))
    result = matching.compare_runs(rows_a, rows_b)
    assert len(result.common) == len(CONFIGS) * len(ONE_CLIENT) and not result.only_a
    by_key = {matching.point_label(c.key): c for c in result.common}
    png_4 = by_key["png 32px 100 images read shuffled cold/fadvise 2x2 clients ra on"]
    # png holds 0.5 in A and 0.9 in B at 4 clients: B's time is shorter
    assert png_4.verdict == matching.FASTER
    assert png_4.ratio == pytest.approx(HOLDS["png"][4] / TIED["png"][4], rel=0.02)
    png_1 = by_key["png 32px 100 images read shuffled cold/fadvise 1x1 clients ra on"]
    assert png_1.verdict == matching.NO_CLEAR
