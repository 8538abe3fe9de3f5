"""plotting: every figure plan.plot_stems promises is written, as real PNG and SVG files."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from itertools import product  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from imgbench import aggregate, measure, plan, plotting  # noqa: E402

CUTOFFS = [10, 100]
REPEAT_FACTORS = (0.9, 1.0, 1.2)


def read_kinds(patterns, readaheads=("on",)):
    """(cache, pattern, readers, readahead) of every read, as plan.read_kinds makes them:
    whole once per cache state by one reader; readahead off only cold."""
    kinds = []
    for cache in ("cold", "warm"):
        for pattern in patterns:
            if pattern == "whole":
                kinds.append((cache, pattern, 1, "on"))
                continue
            for readers in (1, 2):
                for readahead in readaheads:
                    if readahead == "on" or cache == "cold":
                        kinds.append((cache, pattern, readers, readahead))
    return kinds


def make_rows(methods, sizes, patterns, readaheads=("on",), inner=1) -> pd.DataFrame:
    """Rows of every (method, size, cutoff, repeat, inner repeat): a store, and each read
    kind (cold reads evicted with fadvise)."""
    rows = []
    clock = 1_700_000_000.0
    speed = {"png": 4.0, "lmdb": 1.5, "hdf5": 1.2, "npy": 1.0}

    def add(**fields):
        nonlocal clock
        row = dict.fromkeys(measure.ROW_FIELDS, float("nan"))
        row.update(variant="default", gc="disabled", host="h", env_id="e", fsync="syncfs")
        row.update(cpu_count=4, load_1min=0.2, cpu_pressure_pct=0.0, io_pressure_pct=0.0)
        row.update(fields)
        row["images_per_s"] = row["images_read"] / row["seconds"]
        row["t_start_unix"], row["t_end_unix"] = clock, clock + row["seconds"]
        clock += row["seconds"] + 1
        rows.append(row)

    for method in methods:
        for size in sizes:
            for cutoff in CUTOFFS:
                scale = speed[method] * cutoff * (size / 32) ** 2 / 1000
                disk = int(cutoff * size * size * 3 * (1.3 if method == "png" else 1.0))
                for (repeat, factor), inner_repeat in product(
                    enumerate(REPEAT_FACTORS, start=1), range(1, inner + 1)
                ):
                    factor *= 1 + 0.01 * inner_repeat
                    common = {
                        "method": method,
                        "image_size": size,
                        "cutoff": cutoff,
                        "repeat": repeat,
                        "inner_repeat": inner_repeat,
                        "bytes_on_disk": disk,
                        "bytes_apparent": disk,
                        "n_files": 2,
                    }
                    add(
                        **common,
                        operation="store",
                        cache="n/a",
                        eviction="n/a",
                        read_pattern="n/a",
                        readahead="n/a",
                        readers=1,
                        images_read=cutoff,
                        seconds=2 * scale * factor,
                        write_seconds=1.5 * scale * factor,
                        flush_seconds=0.5 * scale * factor,
                    )
                    for cache, pattern, readers, readahead in read_kinds(patterns, readaheads):
                        reads = 50 if pattern == "random_single" else cutoff
                        latency = {}
                        if pattern == "random_single":
                            base = 100 * speed[method] * factor * (2 if readahead == "off" else 1)
                            latency = {
                                "latency_p50_us": base,
                                "latency_p95_us": 2 * base,
                                "latency_p99_us": 3 * base,
                                "latency_max_us": 4 * base,
                            }
                        slower = (2 if cache == "cold" else 1) * (1.5 if readahead == "off" else 1)
                        add(
                            **common,
                            operation="read",
                            cache=cache,
                            eviction="fadvise" if cache == "cold" else "none",
                            read_pattern=pattern,
                            readahead=readahead,
                            readers=readers,
                            images_read=reads,
                            bytes_requested=reads * size * size * 3,
                            seconds=scale * factor * slower,
                            cached_fraction=0.0 if cache == "cold" else 1.0,
                            **latency,
                        )
    return pd.DataFrame(rows)


def tables(tmp_path: Path, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Statistics and disk usage as the plot job reads them: from aggregate's CSV files."""
    stats_path, disk_path = tmp_path / "timings_stats.csv", tmp_path / "disk_usage.csv"
    aggregate.summarise(rows).to_csv(stats_path, index=False)
    aggregate.disk_usage_table(rows).to_csv(disk_path, index=False)
    stats = pd.read_csv(stats_path, keep_default_na=False, na_values=[""])
    return stats, pd.read_csv(disk_path)


def config_for(methods, sizes, patterns) -> dict:
    return {
        "n_images": max(CUTOFFS),
        "cutoffs": CUTOFFS,
        "methods": methods,
        "image_sizes": sizes,
        "read_patterns": patterns,
        # make_rows gives every cutoff random single reads
        "random_reads": min(CUTOFFS),
    }


def check_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 300 and image.height > 200
        pixels = np.asarray(image.convert("L"))
    assert pixels.min() < 128 < pixels.max()  # something is drawn on the white canvas


def check_svg(path: Path) -> None:
    text = path.read_text()
    assert text.lstrip().startswith("<?xml")
    assert "<svg" in text and text.rstrip().endswith("</svg>")


def test_every_expected_figure_is_written(tmp_path):
    methods, sizes = ["png", "lmdb", "npy"], [32, 64]
    patterns = ["whole", "sequential", "shuffled", "random_single"]
    rows = make_rows(methods, sizes, patterns, readaheads=("on", "off"), inner=2)
    stats, disk = tables(tmp_path, rows)
    out_dir = tmp_path / "plots"
    written = plotting.plot_all(stats, disk, out_dir, formats=["png", "svg"], dpi=72, spread="ci")

    stems = plan.plot_stems(config_for(methods, sizes, patterns))
    assert any(stem.startswith("throughput_") for stem in stems)
    assert "latency_random_single_64px" in stems and "speed_vs_npy_32px" in stems
    expected = {out_dir / f"{stem}.{ext}" for stem in stems for ext in ("png", "svg")}
    assert set(written) == expected
    assert len(written) == len(expected)
    assert set(out_dir.iterdir()) == expected
    for path in sorted(expected):
        if path.suffix == ".png":
            check_png(path)
        else:
            check_svg(path)


@pytest.mark.parametrize(
    ("patterns", "spread"), [(["whole"], "iqr"), (["shuffled"], "range"), (["whole"], "ci")]
)
def test_without_npy_or_random_reads(tmp_path, patterns, spread):
    """Also without whole reads: the time figures then hold the stores and say so."""
    methods, sizes = ["png", "hdf5"], [32]
    stats, disk = tables(tmp_path, make_rows(methods, sizes, patterns))
    out_dir = tmp_path / "plots"
    written = plotting.plot_all(stats, disk, out_dir, formats=["png"], dpi=72, spread=spread)
    stems = plan.plot_stems(config_for(methods, sizes, patterns))
    assert not any("speed_vs_npy" in s or "latency" in s for s in stems)
    assert {path.name for path in written} == {f"{stem}.png" for stem in stems}
    assert set(out_dir.iterdir()) == set(written)
    for path in written:
        check_png(path)


def test_spread_is_interval_range_or_interquartile():
    points = pd.DataFrame(
        {"median_s": [2.0, 5.0], "min_s": [1.0, 4.0], "max_s": [4.0, 5.5]}
        | {"q25_s": [1.5, 4.5], "q75_s": [3.0, 5.25]}
        | {"ci_low": [1.25, 4.25], "ci_high": [3.5, 5.5]}
    )
    np.testing.assert_allclose(plotting._spread(points, "range"), [[1.0, 1.0], [2.0, 0.5]])
    np.testing.assert_allclose(plotting._spread(points, "iqr"), [[0.5, 0.5], [1.0, 0.25]])
    np.testing.assert_allclose(plotting._spread(points, "ci"), [[0.75, 0.75], [1.5, 0.5]])


def test_spread_name_says_what_the_bars_are():
    enough = pd.DataFrame({"ci_level": [0.9609375, 0.96875], "n": [9, 10]})
    assert plotting._spread_name(enough, "ci") == (
        "interval of the median (order statistics over timings and over stores)"
    )
    # n = 3 somewhere: no 95 % interval exists there; the bars are min-max at 75 %
    few = pd.DataFrame({"ci_level": [0.9609375, 0.75, 0.0], "n": [9, 3, 1]})
    name = plotting._spread_name(few, "ci")
    assert name.startswith("interval of the median (order statistics over timings and over")
    assert "; 95 % where 6 or more values allow it, else min-max" in name
    assert "min-max, covering the median with as little as 75.0%" in name
    assert plotting._spread_name(few, "range") == "min-max over the timed runs"
    assert plotting._spread_name(few, "iqr") == "interquartile range"
    # one timing everywhere: no bars at all, said so
    single = pd.DataFrame({"ci_level": [0.0, 0.0], "n": [1, 1]})
    assert plotting._spread_name(single, "ci").startswith("none: one timing per point")


def figure_texts(fig) -> str:
    texts = [t.get_text() for t in fig.texts] + [fig.get_suptitle()]
    for ax in fig.axes:
        texts += [ax.get_title(), *(t.get_text() for t in ax.texts)]
        legend = ax.get_legend()
        if legend:
            texts += [t.get_text() for t in legend.get_texts()]
    return "\n".join(texts)


def test_time_figure_note_names_n_the_interval_and_the_reads(tmp_path):
    rows = make_rows(["png", "npy"], [32], ["whole", "shuffled"], inner=2)
    stats, _ = tables(tmp_path, rows)
    base = plotting.baseline(stats)
    assert set(base["read_pattern"]) == {"n/a", "whole"}
    note = plotting._note(base, "ci")
    assert "Median of n = 6 timed runs per point (3 store(s) x up to 2 timed repetition(s))" in (
        note
    )
    assert "bars: interval of the median (order statistics over timings and over stores)" in note
    assert "Reads: the whole store, streamed in chunks by one reader; readahead on." in note
    fig = plotting._time_figure(
        base,
        [("read", "cold"), ("read", "warm")],
        "t",
        False,
        "ci",
        note,
        {"png": "C0", "npy": "C1"},
    )
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [
        "npy (baseline) (read, cold)",
        "npy (baseline) (read, warm)",
        "PNG files (read, cold)",
        "PNG files (read, warm)",
    ]
    plotting.plt.close(fig)


@pytest.mark.parametrize(
    ("series", "label"),
    [("png", "PNG files"), ("png:level1", "PNG files [level1]"), ("zarr", "zarr")],
)
def test_legend_labels(series, label):
    assert plotting._label(series) == label


@pytest.mark.parametrize("single_cutoff", [True, False])
def test_throughput_with_one_cutoff_draws_bars_for_every_method_and_cache(tmp_path, single_cutoff):
    """With one cutoff a line over cutoffs would be a column of dots: the panels draw one
    bar per (method, cache) instead, with the measured medians as heights."""
    methods = ["png", "lmdb", "npy"]
    rows = make_rows(methods, [32], ["shuffled"])
    if single_cutoff:
        rows = rows[rows["cutoff"] == max(CUTOFFS)]
    stats, _ = tables(tmp_path, rows)
    reads = stats[stats["operation"] == "read"]
    fig = plotting._throughput_figure(reads, 32, plotting._colours(stats))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["shuffled, 1 reader(s)", "shuffled, 2 reader(s)"]
    assert "readahead on" in fig.get_suptitle()  # the one setting, said once
    for ax, readers in zip(panels, (1, 2), strict=True):
        heights = sorted(patch.get_height() for patch in ax.patches)
        if not single_cutoff:
            assert heights == [] and len(ax.lines) == len(methods) * 2
            continue
        panel = reads[reads["readers"] == readers]
        assert heights == pytest.approx(sorted(panel["median_images_per_s"]))
        assert len(heights) == len(methods) * 2  # cold and warm per method
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "LMDB",
            "npy (baseline)",
            "PNG files",
        ]
    plotting.plt.close(fig)


@pytest.mark.parametrize("single_cutoff", [True, False])
def test_throughput_keeps_readahead_on_and_off_apart(tmp_path, single_cutoff):
    """Readahead off (cold only) gets its own row of panels, named in the titles; no panel
    mixes the two settings."""
    methods = ["png", "npy"]
    rows = make_rows(methods, [32], ["whole", "shuffled"], readaheads=("on", "off"))
    if single_cutoff:
        rows = rows[rows["cutoff"] == max(CUTOFFS)]
    stats, _ = tables(tmp_path, rows)
    reads = stats[stats["operation"] == "read"]
    fig = plotting._throughput_figure(reads, 32, plotting._colours(stats))
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert list(panels) == [
        "whole, readahead on, 1 reader(s)",
        "whole, readahead on, 2 reader(s)",
        "shuffled, readahead on, 1 reader(s)",
        "shuffled, readahead on, 2 reader(s)",
        "shuffled, readahead off, 1 reader(s)",
        "shuffled, readahead off, 2 reader(s)",
    ]
    assert [t.get_text() for t in panels["whole, readahead on, 2 reader(s)"].texts] == [
        "not measured"
    ]
    off = panels["shuffled, readahead off, 1 reader(s)"]
    expected = reads[
        (reads["read_pattern"] == "shuffled")
        & (reads["readahead"] == "off")
        & (reads["readers"] == 1)
    ]
    assert set(expected["cache"]) == {"cold"}
    if single_cutoff:
        heights = sorted(p.get_height() for p in off.patches if not np.isnan(p.get_height()))
        assert heights == pytest.approx(sorted(expected["median_images_per_s"]))
    else:
        assert len(off.lines) == len(methods)  # cold only, one line per method
        drawn = sorted(y for line in off.lines for y in line.get_ydata())
        assert drawn == pytest.approx(sorted(expected["median_images_per_s"]))
    plotting.plt.close(fig)


def test_latency_figure_names_readahead(tmp_path):
    rows = make_rows(["png", "npy"], [32], ["random_single"], readaheads=("on", "off"))
    stats, _ = tables(tmp_path, rows)
    single = stats[(stats["operation"] == "read") & (stats["read_pattern"] == "random_single")]
    fig = plotting._latency_figure(single, 32, plotting._colours(stats))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "npy (baseline), 1 reader(s), cold, readahead off" in labels
    assert "npy (baseline), 1 reader(s), cold, readahead on" in labels
    assert "npy (baseline), 1 reader(s), warm, readahead on" in labels
    assert len(labels) == len(set(labels)) == 2 * 2 * 3  # methods x readers x kinds
    plotting.plt.close(fig)
