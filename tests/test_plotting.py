"""plotting: every figure plan.plot_stems promises is written, as real PNG and SVG files."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from imgbench import aggregate, measure, plan, plotting  # noqa: E402

CUTOFFS = [10, 100]
REPEAT_FACTORS = (0.9, 1.0, 1.2)


def make_rows(methods, sizes, patterns) -> pd.DataFrame:
    """Rows of every (method, size, cutoff, repeat): a store, and reads in each cache state
    for each pattern (one and two readers)."""
    rows = []
    clock = 1_700_000_000.0
    speed = {"png": 4.0, "lmdb": 1.5, "hdf5": 1.2, "npy": 1.0}

    def add(**fields):
        nonlocal clock
        row = dict.fromkeys(measure.ROW_FIELDS, float("nan"))
        row.update(variant="default", gc="disabled", host="h", env_id="e", fsync=True)
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
                for repeat, factor in enumerate(REPEAT_FACTORS, start=1):
                    common = {
                        "method": method,
                        "image_size": size,
                        "cutoff": cutoff,
                        "repeat": repeat,
                        "bytes_on_disk": disk,
                        "bytes_apparent": disk,
                        "n_files": 2,
                    }
                    add(
                        **common,
                        operation="store",
                        cache="n/a",
                        read_pattern="n/a",
                        readers=1,
                        images_read=cutoff,
                        seconds=2 * scale * factor,
                    )
                    for cache in ("cold", "warm"):
                        for pattern in patterns:
                            for readers in (1, 2):
                                reads = 50 if pattern == "random_single" else cutoff
                                latency = {}
                                if pattern != "sequential":
                                    base = 100 * speed[method] * factor
                                    latency = {
                                        "latency_p50_us": base,
                                        "latency_p95_us": 2 * base,
                                        "latency_p99_us": 3 * base,
                                        "latency_max_us": 4 * base,
                                    }
                                add(
                                    **common,
                                    operation="read",
                                    cache=cache,
                                    read_pattern=pattern,
                                    readers=readers,
                                    images_read=reads,
                                    seconds=scale * factor * (2 if cache == "cold" else 1),
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
        "max_job_bytes": 10**12,
        "read_patterns": patterns,
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
    patterns = ["sequential", "shuffled", "random_single"]
    stats, disk = tables(tmp_path, make_rows(methods, sizes, patterns))
    out_dir = tmp_path / "plots"
    written = plotting.plot_all(
        stats, disk, out_dir, formats=["png", "svg"], dpi=72, spread="range"
    )

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


def test_without_npy_or_random_reads(tmp_path):
    methods, sizes, patterns = ["png", "hdf5"], [32], ["sequential"]
    stats, disk = tables(tmp_path, make_rows(methods, sizes, patterns))
    out_dir = tmp_path / "plots"
    written = plotting.plot_all(stats, disk, out_dir, formats=["png"], dpi=72, spread="iqr")
    stems = plan.plot_stems(config_for(methods, sizes, patterns))
    assert not any("speed_vs_npy" in s or "latency" in s for s in stems)
    assert {path.name for path in written} == {f"{stem}.png" for stem in stems}
    assert set(out_dir.iterdir()) == set(written)
    for path in written:
        check_png(path)


def test_spread_is_range_or_interquartile():
    points = pd.DataFrame(
        {"median_s": [2.0, 5.0], "min_s": [1.0, 4.0], "max_s": [4.0, 5.5]}
        | {"q25_s": [1.5, 4.5], "q75_s": [3.0, 5.25]}
    )
    np.testing.assert_allclose(plotting._spread(points, "range"), [[1.0, 1.0], [2.0, 0.5]])
    np.testing.assert_allclose(plotting._spread(points, "iqr"), [[0.5, 0.5], [1.0, 0.25]])


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
