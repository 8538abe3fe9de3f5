"""plotting: every figure the registry (figures.stems) promises is written, as PNG and SVG;
each family draws what its figure promises."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from itertools import product  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.lines  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from imgbench.experiment import vocabulary  # noqa: E402
from imgbench.harness import measure  # noqa: E402
from imgbench.report import figures, plotting  # noqa: E402
from imgbench.report.plotting import (  # noqa: E402
    disk_usage,
    grid,
    latency,
    speed,
    style,
    throughput,
    times,
)
from imgbench.report.plotting.labels import Labels  # noqa: E402
from imgbench.results import footprint, points  # noqa: E402
from imgbench.results.series import store_and_whole_reads  # noqa: E402

CUTOFFS = [10, 100]
REPEAT_FACTORS = (0.9, 1.0, 1.2)
# What the rows say each method is (its DESCRIPTION): legends name the methods by it.
DESCRIPTIONS = {"png": "PNG files", "lmdb": "LMDB", "hdf5": "HDF5", "npy": "npy (baseline)"}


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
        row["method_description"] = DESCRIPTIONS[row["method"]]
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
    points.summarise(rows).to_csv(stats_path, index=False)
    footprint.disk_usage_table(rows).to_csv(disk_path, index=False)
    stats = pd.read_csv(stats_path, keep_default_na=False, na_values=[""])
    disk = pd.read_csv(disk_path)
    return stats, disk


def config_for(methods, sizes, patterns) -> dict:
    return {
        "n_images": max(CUTOFFS),
        "cutoffs": CUTOFFS,
        "methods": methods,
        "image_sizes": sizes,
        "read_patterns": patterns,
        "read_cache": ["cold", "warm"],
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
    patterns = ["whole", "sequential", "shuffled", "buffered_shuffle", "random_single"]
    rows = make_rows(methods, sizes, patterns, readaheads=("on", "off"), inner=2)
    stats, disk = tables(tmp_path, rows)
    reads = stats[stats["operation"] == "read"]
    assert [p for p, _ in throughput.panel_rows(reads)].count("buffered_shuffle") == 2
    out_dir = tmp_path / "plots"
    stems = figures.stems(config_for(methods, sizes, patterns))
    written = plotting.plot_all(
        stats, disk, out_dir, stems=stems, formats=["png", "svg"], dpi=72, spread="ci"
    )

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
    stems = figures.stems(config_for(methods, sizes, patterns))
    written = plotting.plot_all(
        stats, disk, out_dir, stems=stems, formats=["png"], dpi=72, spread=spread
    )
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
    np.testing.assert_allclose(times.spread_bars(points, "range"), [[1.0, 1.0], [2.0, 0.5]])
    np.testing.assert_allclose(times.spread_bars(points, "iqr"), [[0.5, 0.5], [1.0, 0.25]])
    np.testing.assert_allclose(times.spread_bars(points, "ci"), [[0.75, 0.75], [1.5, 0.5]])


def test_spread_name_says_what_the_bars_are():
    nan = float("nan")
    enough = pd.DataFrame({"ci_level": [0.9609375, 0.96875], "n": [27, 30]})
    assert times.spread_name(enough, "ci") == (
        "interval of the median (order statistics of the store medians)"
    )
    # 3 stores somewhere: no 95 % interval exists there; the bars are min-max at 75 %; a
    # point of one store has none, however many timings
    few = pd.DataFrame({"ci_level": [0.9609375, 0.75, nan], "n": [27, 15, 5]})
    name = times.spread_name(few, "ci")
    assert name.startswith("interval of the median (order statistics of the store medians)")
    assert "; 95 % where 6 or more stores allow it, else min-max of the store medians" in name
    assert "covering the median with as little as 75.0%" in name
    assert name.endswith("; none where a point had one store")
    assert times.spread_name(few, "range") == "min-max over the timed runs"
    assert times.spread_name(few, "iqr") == "interquartile range"
    # one store everywhere: no interval bars at all, said so; range still has timings
    lone = pd.DataFrame({"ci_level": [nan, nan], "n": [5, 5]})
    assert times.spread_name(lone, "ci").startswith("none: one store per point")
    assert times.spread_name(lone, "range") == "min-max over the timed runs"
    # one timing everywhere: no bars of any kind
    single = pd.DataFrame({"ci_level": [nan, nan], "n": [1, 1]})
    assert times.spread_name(single, "ci").startswith("none: one store per point")
    assert times.spread_name(single, "range").startswith("none: one timing per point")


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
    base = store_and_whole_reads(stats)
    assert set(base["read_pattern"]) == {"n/a", "whole"}
    note = times.note(base, "ci")
    median = "Median of the store medians per point (3 store(s) x up to 2 timed repetition(s), "
    assert median + "n = 6);" in note
    assert "bars: interval of the median (order statistics of the store medians); 95 % " in note
    assert "covering the median with as little as 75.0%." in note
    assert "Reads: the whole store, streamed in chunks by one reader; readahead on." in note
    fig = times.draw_time(
        base,
        [("read", "cold"), ("read", "warm")],
        title="t",
        log=False,
        spread="ci",
        note_text=note,
        colours={"png": "C0", "npy": "C1"},
        labels=Labels.of_tables(stats),
    )
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    # The title says read: the labels name only the cache state.
    assert labels == [
        "npy (baseline) (cold)",
        "npy (baseline) (warm)",
        "PNG files (cold)",
        "PNG files (warm)",
    ]
    plt.close(fig)


@pytest.mark.parametrize(
    ("series", "label"),
    [
        ("png", "PNG files + labels.csv"),
        ("png:level1", "PNG files + labels.csv [level1]"),
        ("zarr", "zarr"),  # no description in the tables: its name
    ],
)
def test_legend_labels_are_the_descriptions_the_tables_carry(series, label):
    described = pd.DataFrame(
        {"method": ["png", "npy"], "method_description": ["PNG files + labels.csv", None]}
    )
    labels = Labels.of_tables(described, described.drop(columns="method_description"))
    assert labels(series) == label
    assert labels("npy") == "npy"


def test_each_drawing_names_the_series_of_its_own_tables(tmp_path):
    """Labels are an argument, not state left behind: a figure of tables without
    descriptions, drawn after one with them, names its methods by their names."""
    stats, disk = tables(tmp_path, make_rows(["png", "npy"], [32], ["whole"]))
    described = plotting.draw("disk_usage", stats, disk, spread="ci")
    bare = [frame.drop(columns="method_description") for frame in (stats, disk)]
    named = plotting.draw("disk_usage", *bare, spread="ci")
    legend_texts = [
        [t.get_text() for t in fig.axes[0].get_legend().get_texts()] for fig in (described, named)
    ]
    assert legend_texts == [["npy (baseline)", "PNG files"], ["npy", "png"]]
    for fig in (described, named):
        plt.close(fig)


def test_every_registry_drawing_is_a_plotting_function():
    assert {figure.draw for figure in figures.FIGURES} == set(plotting.DRAWERS)
    assert all(callable(draw) for draw in plotting.DRAWERS.values())


def test_svg_legends_hold_the_descriptions_as_text(tmp_path):
    stats, disk = tables(tmp_path, make_rows(["png", "npy"], [32], ["whole"]))
    written = plotting.plot_all(
        stats, disk, tmp_path / "plots", stems=["disk_usage"], formats=["svg"], dpi=72, spread="ci"
    )
    svg = written[0].read_text()
    assert ">npy (baseline)<" in svg and ">PNG files<" in svg


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
    fig = throughput.throughput_panels(reads, 32, style.colours(stats), Labels.of_tables(stats))
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["shuffled, 1 reader", "shuffled, 2 readers"]
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
    plt.close(fig)


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
    fig = throughput.throughput_panels(reads, 32, style.colours(stats), Labels.of_tables(stats))
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert list(panels) == [
        "whole, readahead on, 1 reader",
        "shuffled, readahead on, 1 reader",
        "shuffled, readahead on, 2 readers",
        "shuffled, readahead off, 1 reader",
        "shuffled, readahead off, 2 readers",
    ]
    # A whole read is one process: its 2-reader place is no empty panel but a word why.
    (blank,) = [ax for ax in fig.axes if not ax.get_title()]
    assert not blank.axison
    assert [t.get_text() for t in blank.texts] == ["whole reads in one process:\nno 2 readers"]
    off = panels["shuffled, readahead off, 1 reader"]
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
    plt.close(fig)


def test_latency_figure_has_a_panel_per_reader_count_and_names_readahead(tmp_path):
    """One panel per reader count, a line per (method, cache, readahead) in each; one
    legend names the methods, the cache states and filled/hollow for readahead on/off."""
    rows = make_rows(["png", "npy"], [32], ["random_single"], readaheads=("on", "off"))
    stats, _ = tables(tmp_path, rows)
    single = stats[(stats["operation"] == "read") & (stats["read_pattern"] == "random_single")]
    fig = latency.latency_panels(single, 32, style.colours(stats), Labels.of_tables(stats))
    assert [ax.get_title() for ax in fig.axes] == ["1 reader", "2 readers"]
    for ax, readers in zip(fig.axes, (1, 2), strict=True):
        assert len(ax.lines) == 2 * 3  # methods x (cold on, cold off, warm on)
        drawn = sorted(line.get_xdata()[0] for line in ax.lines)  # p50 of each line
        mine = single[(single["readers"] == readers) & (single["cutoff"] == max(CUTOFFS))]
        assert drawn == pytest.approx(sorted(mine["median_latency_p50_us"]))
        hollow = [line for line in ax.lines if line.get_markerfacecolor() == "none"]
        assert len(hollow) == 2  # readahead off: cold only, one per method
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "npy (baseline)",
        "PNG files",
        "cold read",
        "warm read",
        "readahead on (filled)",
        "readahead off (hollow)",
    ]
    plt.close(fig)


# --- figures a reader would rather look at -------------------------------------------


def drawn_in_axes(artist) -> bool:
    """Whether a legend entry's artist shows in its axes: a line needs two distinct points
    or a marker (a one-point line without a marker is invisible)."""
    if not artist.get_visible():
        return False
    if isinstance(artist, matplotlib.lines.Line2D):
        points = set(zip(artist.get_xdata(), artist.get_ydata(), strict=True))
        return len(points) >= 2 or artist.get_marker() not in ("None", "", None)
    return True


def test_disk_by_size_with_one_size_is_labelled_bars_against_the_raw_pixels(tmp_path):
    """One image size: a bar per method (every one visible, none hidden under another),
    each labelled with its bytes and ratio to raw, and raw pixels a line across."""
    methods = ["png", "hdf5", "npy"]
    _, disk = tables(tmp_path, make_rows(methods, [32], ["whole"]))
    fig = disk_usage.draw_bytes_per_image(disk, Labels.of_tables(disk))
    (ax,) = fig.axes
    widths = sorted(patch.get_width() for patch in ax.patches)
    largest = disk[disk["cutoff"] == max(CUTOFFS)]
    assert widths == pytest.approx(sorted(largest["bytes_per_image"]))
    labels = [t.get_text() for t in ax.texts]
    assert sorted(labels) == [" 3,072 B (1.00x raw)"] * 2 + [" 3,994 B (1.30x raw)"]
    handles, names = ax.get_legend_handles_labels()
    assert names == ["raw pixels:\n32x32x3 = 3,072 B"]
    assert all(drawn_in_axes(h) for h in handles)
    (raw,) = handles
    assert set(raw.get_xdata()) == {3072}  # a line across the bars at the raw bytes
    assert "stores of 100 images" in ax.get_title()
    plt.close(fig)


def test_disk_by_size_with_several_sizes_shows_coinciding_lines(tmp_path):
    """hdf5 and npy store exactly the raw bytes at both sizes: npy's line lies on hdf5's.
    Its legend entry says so, the markers differ (npy's smaller, hollow, inside hdf5's) and
    every legend entry is drawn."""
    _, disk = tables(tmp_path, make_rows(["png", "hdf5", "npy"], [32, 64], ["whole"]))
    fig = disk_usage.draw_bytes_per_image(disk, Labels.of_tables(disk))
    (ax,) = fig.axes
    handles, names = ax.get_legend_handles_labels()
    assert names == ["raw pixels (HxWx3)", "HDF5", "npy (baseline) (same as HDF5)", "PNG files"]
    assert all(drawn_in_axes(h) for h in handles)
    lines = dict(zip(names, handles, strict=True))
    hdf5, npy = lines["HDF5"], lines["npy (baseline) (same as HDF5)"]
    assert hdf5.get_marker() != npy.get_marker()
    assert npy.get_markersize() < hdf5.get_markersize()
    assert npy.get_markerfacecolor() == "none"
    assert lines["raw pixels (HxWx3)"].get_zorder() > npy.get_zorder()  # on top: visible
    plt.close(fig)


def test_disk_by_size_legend_of_many_series_sits_beside_the_axes(tmp_path):
    """Five series and the raw line: a legend inside the axes covered the lines of the
    small sizes; beside them it covers nothing. With few series it stays inside."""
    _, disk = tables(tmp_path, make_rows(["png", "lmdb", "hdf5", "npy"], [32, 64], ["whole"]))
    variant = disk[disk["method"] == "png"].assign(variant="level1", series="png:level1")
    fig = disk_usage.draw_bytes_per_image(
        pd.concat([disk, variant], ignore_index=True), Labels.of_tables(disk)
    )
    (ax,) = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend_box = ax.get_legend().get_window_extent(renderer)
    assert legend_box.x0 >= ax.get_window_extent(renderer).x1
    plt.close(fig)
    (tmp_path / "few").mkdir()
    _, few = tables(tmp_path / "few", make_rows(["png", "npy"], [32, 64], ["whole"]))
    fig = disk_usage.draw_bytes_per_image(few, Labels.of_tables(few))
    (ax,) = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(renderer).x1 <= ax.get_window_extent(renderer).x1
    plt.close(fig)


def test_figures_of_stores_say_nothing_of_reads(tmp_path):
    """The store-only figures' note names n and the bars, not the whole-store read; the
    figures with reads name it."""
    stats, disk = tables(tmp_path, make_rows(["png", "npy"], [32], ["whole"], inner=2))
    stores = store_and_whole_reads(stats).query("operation == 'store'")
    assert "Reads" not in times.note(stores, "ci")
    assert "Median of the store medians per point (3 store(s)" in times.note(stores, "ci")
    for stem, reads in (
        ("store_time_linear_32px", False),
        ("store_time_loglog_32px", False),
        ("read_time_linear_32px", True),
        ("store_and_read_time_loglog_32px", True),
    ):
        fig = plotting.draw(stem, stats, disk, spread="ci")
        note = "\n".join(t.get_text() for t in fig.texts)
        assert note.startswith("Median of the store medians per point")
        assert ("Reads: the whole store" in note) == reads, stem
        plt.close(fig)


def layout(fig) -> dict:
    """Inches: the saved image (tight box), the axes' area and the gap between the title
    and the highest panel title."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tight = fig.get_tightbbox(renderer)
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
    title = fig._suptitle.get_window_extent(renderer)
    top = max(ax.title.get_window_extent(renderer).y1 for ax in fig.axes)
    return {
        "saved": (tight.width, tight.height),
        "axes_share": sum(b.width * b.height for b in boxes)
        / fig.dpi**2
        / (tight.width * tight.height),
        "title_gap": (title.y0 - top) / fig.dpi,
    }


@pytest.mark.parametrize("single_cutoff", [False, True])
def test_throughput_canvas_is_as_large_as_its_panels(tmp_path, single_cutoff):
    """One pattern and one reader count make one panel: an ordinary figure, not a panel in
    a canvas sized for more with the legend hanging outside. More panels grow the canvas
    by a panel each."""
    sizes = {}
    for patterns in (["whole"], ["shuffled"], ["whole", "shuffled"]):
        rows = make_rows(["png", "lmdb", "npy"], [32], patterns)
        if single_cutoff:
            rows = rows[rows["cutoff"] == max(CUTOFFS)]
        stats, _ = tables(tmp_path, rows)
        reads = stats[stats["operation"] == "read"]
        fig = throughput.throughput_panels(reads, 32, style.colours(stats), Labels.of_tables(stats))
        panels = fig.axes
        found = layout(fig)
        width, height = fig.get_size_inches()
        saved_width, saved_height = found["saved"]
        # Everything (the legend too) is on the canvas: saving adds no margin.
        assert saved_width <= width + 0.05 and saved_height <= height + 0.05
        assert found["axes_share"] > 0.4
        assert 0 <= found["title_gap"] < 0.3
        sizes[tuple(patterns)] = (len(panels), width, height)
        plt.close(fig)
    one, columns, rows = sizes[("whole",)], sizes[("shuffled",)], sizes[("whole", "shuffled")]
    assert (one[0], columns[0], rows[0]) == (1, 2, 4)
    assert columns[1] - one[1] == pytest.approx(throughput.PANEL_SIZE[0], abs=0.3)
    assert rows[2] - columns[2] == pytest.approx(columns[2] - grid.TITLE_HEIGHT, abs=0.01)


def test_a_pattern_missing_from_the_vocabulary_keeps_its_panel(tmp_path):
    """Panels follow the vocabulary's order; a pattern it does not know is drawn last,
    never dropped."""
    rows = make_rows(["png", "npy"], [32], ["random_single", "whole"])
    rows.loc[rows["read_pattern"] == "random_single", "read_pattern"] = "zigzag"
    stats, _ = tables(tmp_path, rows)
    reads = stats[stats["operation"] == "read"]
    assert throughput.panel_rows(reads) == [("whole", "on"), ("zigzag", "on")]
    rows.loc[rows["read_pattern"] == "zigzag", "read_pattern"] = "random_single"
    known = reads.assign(read_pattern=reads["read_pattern"].replace("zigzag", "random_single"))
    assert [p for p, _ in throughput.panel_rows(known)] == ["whole", "random_single"]
    fig = throughput.throughput_panels(reads, 32, style.colours(stats), Labels.of_tables(stats))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "zigzag, 1 reader" in titles
    plt.close(fig)


def test_every_vocabulary_pattern_gets_a_throughput_panel(tmp_path):
    rows = make_rows(["npy"], [32], list(vocabulary.PATTERNS))
    stats, _ = tables(tmp_path, rows)
    reads = stats[stats["operation"] == "read"]
    assert [p for p, _ in throughput.panel_rows(reads)] == list(vocabulary.PATTERNS)


def test_speed_vs_npy_bars_carry_their_multiples(tmp_path):
    stats, _ = tables(tmp_path, make_rows(["png", "npy"], [32], ["whole"]))
    fig = speed.draw_speed_vs_baseline(stats, 32, Labels.of_tables(stats))
    (ax,) = fig.axes
    heights = [patch.get_height() for patch in ax.patches]
    labels = [t.get_text() for t in ax.texts]
    assert labels == [f"{h:.2f}x" for h in heights]
    assert labels == ["4.00x"] * 3  # png is 4x npy in make_rows: store, cold and warm read
    plt.close(fig)


def test_latency_tail_scale_keeps_p99_apart_from_p95(tmp_path):
    rows = make_rows(["png", "npy"], [32], ["random_single"])
    stats, _ = tables(tmp_path, rows)
    single = stats[(stats["operation"] == "read") & (stats["read_pattern"] == "random_single")]
    fig = latency.latency_panels(single, 32, style.colours(stats), Labels.of_tables(stats))
    ax = fig.axes[0]
    ticks = dict(zip((t.get_text() for t in ax.get_yticklabels()), ax.get_yticks(), strict=True))
    assert list(ticks) == ["p50", "p95", "p99"]
    assert ticks["p99"] - ticks["p95"] > 0.5 * (ticks["p95"] - ticks["p50"])
    plt.close(fig)


def test_cutoff_labels_do_not_collide():
    fig, ax = plt.subplots()
    ax.set_xscale("log")
    style.cutoff_ticks(ax, [1, 10, 100, 1000, 2000])
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["1", "10", "100", "", "2,000"]  # 1,000 would overlap 2,000
    plt.close(fig)


def test_disk_usage_has_a_panel_per_image_size(tmp_path):
    """Every image size's stores are drawn (before, only the smallest size's were)."""
    _, disk = tables(tmp_path, make_rows(["png", "npy"], [32, 64], ["whole"]))
    fig = disk_usage.draw_disk_usage(disk, Labels.of_tables(disk))
    assert [ax.get_title() for ax in fig.axes] == ["32x32 images", "64x64 images"]
    for ax, size in zip(fig.axes, (32, 64), strict=True):
        heights = sorted(patch.get_height() for patch in ax.patches)
        assert heights == sorted(disk.loc[disk["image_size"] == size, "bytes_on_disk"])
    plt.close(fig)


def test_more_series_than_ten_colours_still_get_distinct_colours():
    frame = pd.DataFrame({"series": [f"m{i}" for i in range(13)]})
    colours = style.colours(frame)
    assert len(set(colours.values())) == 13
    few = style.colours(frame.head(4))
    assert list(few.values()) == ["C0", "C1", "C2", "C3"]
