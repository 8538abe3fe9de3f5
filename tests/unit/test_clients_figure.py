"""The clients figure (plotting.clients): made only where a config reads by client
processes, two panels (all clients, per client) against the client configurations, error
bars from the intervals over stores; reads by clients stay out of the other figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from clients_fixtures import CONFIGS, HOLDS, ONE_CLIENT, client_rows  # noqa: E402
from PIL import Image  # noqa: E402
from results_fixtures import make_rows, pattern_rows, write_rows  # noqa: E402

from imgbench.report import figures, plotting  # noqa: E402
from imgbench.report.plotting import clients, latency, throughput  # noqa: E402
from imgbench.report.plotting.labels import Labels  # noqa: E402
from imgbench.results import footprint, load, points  # noqa: E402


def config(**changes) -> dict:
    base = {
        "cutoffs": [10, 100],
        "methods": ["png", "npy"],
        "image_sizes": [32],
        "read_cache": ["cold"],
        "read_patterns": ["whole", "shuffled", "random_single"],
        "random_reads": 100,
        "clients": [{"nodes": 1, "per_node": 1}, {"nodes": 2, "per_node": 2}],
    }
    return base | changes


def test_the_figure_is_made_only_for_reads_by_clients():
    stems = figures.stems(config())
    assert [s for s in stems if s.startswith("clients_")] == [
        "clients_shuffled_cold_32px",
        "clients_random_single_cold_32px",
    ]
    for without in ({"clients": []}, {"read_patterns": ["whole"]}):
        assert not [s for s in figures.stems(config(**without)) if s.startswith("clients_")]
    # a config written before the key existed
    older = {k: v for k, v in config().items() if k != "clients"}
    assert not [s for s in figures.stems(older) if s.startswith("clients_")]
    # random single reads need a store of at least random_reads images
    stems = figures.stems(config(random_reads=1000))
    assert "clients_random_single_cold_32px" not in stems
    assert "clients_shuffled_cold_32px" in stems
    figure, size = figures.find("clients_shuffled_cold_32px")
    assert (figure.options, size, figure.category) == (
        {"pattern": "shuffled", "cache": "cold"},
        32,
        "Many clients",
    )


def tables(tmp_path, rows):
    """Statistics and disk usage as the plot job reads them, from the aggregate's CSVs."""
    loaded = load.load_rows(write_rows(rows, tmp_path / "rows"))
    stats_path, disk_path = tmp_path / "stats.csv", tmp_path / "disk.csv"
    points.summarise(loaded).to_csv(stats_path, index=False)
    footprint.disk_usage_table(loaded).to_csv(disk_path, index=False)
    return pd.read_csv(stats_path, keep_default_na=False, na_values=[""]), pd.read_csv(disk_path)


def test_throughput_against_clients_in_two_panels_with_intervals(tmp_path):
    stats, disk = tables(tmp_path, make_rows() + client_rows(HOLDS))
    written = plotting.plot_all(
        stats,
        disk,
        tmp_path / "plots",
        stems=["clients_shuffled_cold_32px"],
        formats=["png"],
        dpi=72,
        spread="ci",
    )
    assert [p.name for p in written] == ["clients_shuffled_cold_32px.png"]
    with Image.open(written[0]) as image:
        assert image.width > 500 and image.height > 250
        assert np.asarray(image.convert("L")).min() < 128
    fig = plotting.draw("clients_shuffled_cold_32px", stats, disk, spread="ci")
    total, per_client = fig.axes[:2]
    assert total.get_ylabel() == "images/s, all clients"
    assert per_client.get_ylabel() == "images/s per client"
    assert total.get_xlabel() == "clients (nodes x per node)"
    ticks = [t.get_text() for t in total.get_xticklabels()]
    assert ticks == [f"{n * k}\n({n}x{k})" for n, k in CONFIGS]
    # one line per method; per client, png falls to HOLDS x its one-client images/s
    lines = [line for line in per_client.get_lines() if line.get_linestyle() != "None"]
    assert len(lines) == len(ONE_CLIENT)
    tops = sorted(float(line.get_ydata()[-1]) for line in lines)
    expected = sorted(one * HOLDS[m][4] for m, one in ONE_CLIENT.items())
    assert tops == pytest.approx(expected, rel=0.02)
    # error bars: a vertical segment per point, from the interval over the 3 stores
    bars = [c for c in per_client.collections if len(c.get_segments())]
    assert sum(len(c.get_segments()) for c in bars) == len(CONFIGS) * len(ONE_CLIENT)
    assert "at least 75%" in fig.get_suptitle() and "shuffled, cold (fadvise)" in (
        fig.get_suptitle()
    )
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["npy", "png"]
    plt.close(fig)


def test_a_kind_without_reads_by_clients_says_not_measured(tmp_path):
    stats, disk = tables(tmp_path, make_rows() + client_rows(HOLDS))
    fig = plotting.draw("clients_shuffled_warm_32px", stats, disk, spread="ci")
    assert "not measured" in " ".join(t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)


def test_reads_by_clients_stay_out_of_the_throughput_and_latency_figures(tmp_path):
    single = [r for r in pattern_rows() if r["read_pattern"] == "random_single"]
    many_single = client_rows(HOLDS, pattern="random_single")
    for item in many_single:
        item.update(latency_p50_us=1.0, latency_p95_us=2.0, latency_p99_us=3.0)
    rows = make_rows() + single + client_rows(HOLDS) + many_single
    stats, disk = tables(tmp_path, rows)
    labels = Labels.of_tables(stats, disk)
    fig = throughput.throughput_figure(stats, disk, size=32, spread="ci", labels=labels)
    titles = [ax.get_title() for ax in fig.axes]
    assert not any("shuffled" in title for title in titles)  # shuffled only by clients
    plt.close(fig)
    fig = latency.latency_figure(stats, disk, size=32, spread="ci", labels=labels)
    drawn = [line for ax in fig.axes for line in ax.get_lines() if len(line.get_xdata()) == 3]
    assert len(drawn) == 2  # npy and png of the forked reader, not their 3 client points
    plt.close(fig)
    assert len(clients.client_points(stats, 32, "random_single", "cold")) == 6


def test_methods_far_apart_go_on_a_log_axis(tmp_path):
    stats, disk = tables(tmp_path, make_rows() + client_rows(HOLDS))
    assert max(ONE_CLIENT.values()) / min(ONE_CLIENT.values()) < clients.LOG_ABOVE_SPAN
    fig = plotting.draw("clients_shuffled_cold_32px", stats, disk, spread="ci")
    assert {ax.get_yscale() for ax in fig.axes[:2]} == {"linear"}
    plt.close(fig)
    slower = stats.copy()  # png 100 times slower: 500 times below npy
    png = slower["series"] == "png"
    for column in [c for c in slower.columns if "images_per_s" in c]:
        slower.loc[png, column] = pd.to_numeric(slower.loc[png, column], errors="coerce") / 100
    fig = plotting.draw("clients_shuffled_cold_32px", slower, disk, spread="ci")
    assert {ax.get_yscale() for ax in fig.axes[:2]} == {"log"}
    plt.close(fig)
