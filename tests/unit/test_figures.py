"""figures: the registry of figures the plan, the plotting and the report share."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import docutils.core
import docutils.utils
import jinja2
import pytest
import yaml

from imgbench.experiment import rigor
from imgbench.report import figures, plotting

# The report's captions and front page (workflow/report/).
REPORT_DIR = Path(__file__).resolve().parents[2] / "workflow" / "report"


def make_config(**changes) -> dict:
    config = {
        "cutoffs": [1, 10, 100, 1000],
        "methods": ["png", "lmdb", "npy"],
        "image_sizes": [32, 64],
        "read_cache": ["cold", "warm"],
        "read_patterns": ["whole", "sequential", "random_single"],
        "random_reads": 100,
    }
    config.update(changes)
    return config


def test_stems_per_size_and_per_run():
    stems = figures.stems(make_config())
    expected = ["disk_usage", "disk_per_image_by_size"]
    for size in (32, 64):
        for figure in ("store_time", "read_time", "store_and_read_time"):
            for scale in ("linear", "loglog"):
                expected.append(f"{figure}_{scale}_{size}px")
        expected += [
            f"throughput_{size}px",
            f"speed_vs_npy_{size}px",
            f"latency_random_single_{size}px",
        ]
    assert sorted(stems) == sorted(expected)
    assert len(stems) == len(set(stems))


def test_figures_follow_methods_patterns_and_limits():
    config = make_config(
        methods=["png"], read_patterns=["sequential"], image_sizes=[32, 512], cutoffs=[100, 1000]
    )
    stems = figures.stems(config)
    assert not any("speed_vs_npy" in s or "latency" in s for s in stems)
    # Without whole reads there is no read time to draw: only the store time figures.
    assert not any(s.startswith(("read_time", "store_and_read_time")) for s in stems)
    assert {"throughput_32px", "throughput_512px", "store_time_loglog_512px"} <= set(stems)
    # npy alone has nothing to be compared with.
    assert not any("speed_vs_npy" in s for s in figures.stems(make_config(methods=["npy"])))


def test_latency_figure_needs_a_store_large_enough_for_random_reads():
    stems = figures.stems(make_config(random_reads=1000))
    assert {"latency_random_single_32px", "latency_random_single_64px"} <= set(stems)
    stems = figures.stems(make_config(random_reads=5000))
    assert not [stem for stem in stems if stem.startswith("latency")]


def test_every_stem_names_its_figure_and_size():
    for stem in figures.stems(make_config(image_sizes=[32, 128])):
        figure, size = figures.find(stem)
        assert stem == (figure.name if size is None else f"{figure.name}_{size}px")
        assert figure.per_size == (size is not None)
    with pytest.raises(ValueError, match="no figure is named"):
        figures.find("histogram_32px")
    with pytest.raises(ValueError, match="no figure is named"):
        figures.find("disk_usage_32px")  # drawn once per run, not per size


def test_every_figure_is_drawn_by_a_plotting_function():
    for figure in figures.FIGURES:
        assert callable(plotting.DRAWERS.get(figure.draw)), figure.draw


@pytest.mark.parametrize("figure", figures.FIGURES, ids=lambda f: f.name)
def test_every_caption_is_a_file_of_clean_restructured_text(figure):
    path = REPORT_DIR / figure.caption
    assert path.parent == REPORT_DIR / "figures" and path.suffix == ".rst"
    text = path.read_text()
    assert figure.category and len(text) > 80
    # Rendered as the report renders it; any warning (bad markup) is an error here.
    docutils.core.publish_parts(
        text,
        writer="html",
        settings_overrides={"halt_level": docutils.utils.Reporter.WARNING_LEVEL},
    )


def test_every_caption_file_belongs_to_a_figure():
    used = {REPORT_DIR / figure.caption for figure in figures.FIGURES}
    assert set((REPORT_DIR / "figures").glob("*.rst")) == used


def test_report_fields_of_a_plot_job():
    wildcards = SimpleNamespace(figure="read_time_loglog_64px")
    assert figures.ReportField("category")(wildcards) == "Time"
    assert figures.ReportField("subcategory")(wildcards) == "64x64"
    caption = figures.ReportField("caption")(wildcards)
    assert caption == "figures/read_time.rst"
    assert "``read_time_loglog``: log-log axes" in (REPORT_DIR / caption).read_text()
    assert figures.report_labels(wildcards) == {
        "figure": "read time loglog",
        "image size": "64x64",
    }
    per_run = SimpleNamespace(figure="disk_usage")
    assert figures.ReportField("subcategory")(per_run) == "all sizes"


def front_page(config: dict) -> str:
    """The report's front page for ``config``, rendered as ``snakemake --report`` does,
    with its whitespace collapsed."""
    template = (REPORT_DIR / "workflow.rst").read_text()
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = environment.from_string(template).render(snakemake=SimpleNamespace(config=config))
    page = docutils.core.publish_parts(
        text,
        writer="html",
        settings_overrides={"halt_level": docutils.utils.Reporter.WARNING_LEVEL},
    )["html_body"]
    return " ".join(page.split())  # as a browser shows it: line breaks are spaces


def test_front_page_describes_the_run_of_its_config():
    config = yaml.safe_load((REPORT_DIR.parents[1] / "config.yaml").read_text())
    rigor.apply(config)  # as validation does
    page = front_page(config)
    assert "<strong>Rigor: default</strong>: 3 store(s) per point (min–max intervals)" in page
    assert "Methods: png, lmdb, hdf5, npy." in page and "Variants" not in page
    assert "Images: CIFAR-10, 32 pixels a side" in page
    assert "patterns whole, random_single" in page
    assert f"more than {config['busy']['foreign_cpu_cores']} of a core" in page
    config["variants"] = {"png": {"default": {}, "level1": {}}, "wds": {"webp": {}}}
    config["dataset"]["images_dir"] = "photos"
    config.update(rigor="fast", repeats=1)
    page = front_page(config)
    assert "<strong>Rigor: fast</strong>: 1 store(s) per point (no interval, no verdict)" in page
    assert "Variants: png (default, level1); wds (webp)." in page
    assert 'Images: the folder <tt class="docutils literal">photos</tt>, 32 pixels' in page
