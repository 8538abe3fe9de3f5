"""The codecs figure (plotting.codecs): made only where a config has two or more encoded
variants read warm; bytes per image against warm read images/s, a marker per encoded
series (colour by encoding family, shape by codec, hollow where lossy), a panel per
method, error bars from the stores."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from codecs_fixtures import SERIES, codec_rows, codec_tables, per_image  # noqa: E402
from PIL import Image  # noqa: E402

from imgbench.report import figures, plotting  # noqa: E402
from imgbench.report.plotting import codecs as codecs_plot  # noqa: E402


def config(**changes) -> dict:
    base = {
        "cutoffs": [10, 100],
        "methods": ["png", "lmdb", "npy"],
        "image_sizes": [32, 64],
        "read_cache": ["cold", "warm"],
        "read_patterns": ["whole", "shuffled"],
        "random_reads": 100,
        "variants": {},
    }
    return base | changes


def codec_stems(cfg: dict) -> list[str]:
    return [s for s in figures.stems(cfg) if s.startswith("codecs")]


# --- when the figure is made --------------------------------------------------------------


def test_the_figure_is_made_for_two_or_more_encoded_variants():
    # png's default (PNG files) is the one encoded series; lmdb keeps raw pixels
    assert codec_stems(config()) == []
    assert codec_stems({k: v for k, v in config().items() if k != "variants"}) == []
    two = config(variants={"lmdb": {"default": {}, "png": {"encoding": "png"}}})
    assert codec_stems(two) == ["codecs_32px", "codecs_64px"]
    by_codec = config(
        methods=["lmdb", "hdf5"],
        variants={
            "lmdb": {
                "png_pillow": {"encoding": "png", "codec": "pillow"},
                "png_opencv": {"encoding": "png", "codec": "opencv"},
            }
        },
    )
    assert codec_stems(by_codec) == ["codecs_32px", "codecs_64px"]
    raw_only = config(
        methods=["lmdb", "hdf5", "npy"],
        variants={"lmdb": {"default": {}, "pickle": {"value_format": "pickle"}}},
    )
    assert codec_stems(raw_only) == []
    png_raw = config(methods=["png"], variants={"png": {"default": {}, "raw": {"encoding": "raw"}}})
    assert codec_stems(png_raw) == []
    # a variant of a method the registry knows no default of counts by its codec option
    other = config(methods=["lmdb", "newformat"], variants={"newformat": {"a": {"codec": "spng"}}})
    assert codec_stems(
        other | {"variants": {**other["variants"], "lmdb": {"p": {"encoding": "png"}}}}
    )
    # warm reads are what it draws
    assert codec_stems(two | {"read_cache": ["cold"]}) == []
    figure, size = figures.find("codecs_64px")
    assert (figure.category, figure.caption, size) == ("Codecs", "figures/codecs.rst", 64)


def test_the_default_encodings_are_the_methods_own():
    """The registry does not import the methods: its defaults are checked against their
    OPTIONS here."""
    from imgbench.methods import available_methods, get_method

    for method in available_methods():
        options = get_method(method).OPTIONS
        if "encoding" in options:
            assert figures.DEFAULT_ENCODINGS[method] == options["encoding"], method
        else:
            assert method not in figures.DEFAULT_ENCODINGS, method


# --- drawing -------------------------------------------------------------------------------------


def tables(tmp_path, rows, *, with_codec: bool = True):
    """Statistics and disk usage as the plot job reads them, from the aggregate's CSVs
    (which carry each series' codec); ``with_codec=False``: tables of an older run,
    without the column."""
    loaded, stats, disk = codec_tables(tmp_path, rows)
    assert "codec" in stats and "codec" in disk  # the series' columns include it
    if not with_codec:
        stats, disk = stats.drop(columns="codec"), disk.drop(columns="codec")
    stats_path, disk_path = tmp_path / "stats.csv", tmp_path / "disk.csv"
    stats.to_csv(stats_path, index=False)
    disk.to_csv(disk_path, index=False)
    return pd.read_csv(stats_path, keep_default_na=False, na_values=[""]), pd.read_csv(disk_path)


def markers(ax) -> dict[tuple[float, float], object]:
    """The drawn points of ``ax`` (lines with a marker, not the error bars' caps), by
    their (x, y) rounded to whole numbers."""
    found = {}
    for line in ax.get_lines():
        if line.get_marker() in (None, "None", "", "_", "|") or len(line.get_xdata()) != 1:
            continue
        found[(round(float(line.get_xdata()[0])), round(float(line.get_ydata()[0])))] = line
    return found


def test_bytes_against_warm_shuffled_reads_with_a_panel_per_method(tmp_path):
    stats, disk = tables(tmp_path, codec_rows())
    written = plotting.plot_all(
        stats, disk, tmp_path / "plots", stems=["codecs_32px"], formats=["png"], dpi=72, spread="ci"
    )
    assert [p.name for p in written] == ["codecs_32px.png"]
    with Image.open(written[0]) as image:
        assert image.width > 600 and image.height > 250
        assert np.asarray(image.convert("L")).min() < 128
    fig = plotting.draw("codecs_32px", stats, disk, spread="ci")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["lmdb", "png"]
    assert "warm shuffled read" in fig.get_suptitle() and "100 images" in fig.get_suptitle()
    assert {ax.get_xscale() for ax in panels} == {ax.get_yscale() for ax in panels} == {"log"}
    for ax in panels:
        method = ax.get_title()
        drawn = markers(ax)
        expected = {
            (round(per_image(m, v)), round(spec.shuffled)): spec
            for (m, v), spec in SERIES.items()
            if m == method and spec.codec != "none"
        }
        assert sorted(drawn) == sorted(expected)
        for point, line in drawn.items():
            spec = expected[point]
            assert line.get_marker() == codecs_plot.CODEC_MARKERS[spec.codec][0]
            family = codecs_plot.FAMILY_COLOURS[spec.encoding.split()[0]]
            assert matplotlib.colors.same_color(line.get_color(), family)
            hollow = matplotlib.colors.same_color(line.get_markerfacecolor(), "white")
            assert hollow == (spec.psnr is not None)
    # error bars: a vertical and a horizontal segment per point
    lmdb = panels[0]
    segments = sum(len(c.get_segments()) for c in lmdb.collections)
    assert segments == 2 * len(markers(lmdb))
    legend = [t.get_text().strip() for t in fig.legends[0].get_texts()]
    for entry in ("png", "jpeg", "webp", "qoi", "pillow", "opencv", "spng", "lossless", "lossy"):
        assert entry in legend
    plt.close(fig)


def test_without_shuffled_reads_the_whole_read_is_drawn(tmp_path):
    rows = [r for r in codec_rows() if r["read_pattern"] != "shuffled"]
    stats, disk = tables(tmp_path, rows)
    fig = plotting.draw("codecs_32px", stats, disk, spread="ci")
    assert "warm whole read" in fig.get_suptitle()
    qoi = SERIES[("lmdb", "qoi")]
    assert (round(per_image("lmdb", "qoi")), round(qoi.whole)) in markers(fig.axes[0])
    plt.close(fig)


def test_tables_without_codec_draw_encoded_series_as_pillow(tmp_path):
    stats, disk = tables(tmp_path, codec_rows(), with_codec=False)
    fig = plotting.draw("codecs_32px", stats, disk, spread="ci")
    shapes = {line.get_marker() for ax in fig.axes for line in markers(ax).values()}
    assert shapes == {codecs_plot.CODEC_MARKERS["pillow"][0]}
    assert len(markers(fig.axes[0])) == 6  # lmdb's raw series still left out
    plt.close(fig)


def test_fewer_than_two_encoded_series_says_so(tmp_path):
    one = {k: v for k, v in SERIES.items() if k in {("lmdb", "png_pillow"), ("lmdb", "default")}}
    stats, disk = tables(tmp_path, codec_rows(one))
    fig = plotting.draw("codecs_32px", stats, disk, spread="ci")
    assert "fewer than two encoded series" in " ".join(t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)
