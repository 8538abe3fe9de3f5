"""estimate: a run's timed operations and wall time, printed at its start."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from imgbench.experiment import estimate, rigor
from imgbench.experiment.config import validate_config
from imgbench.harness import job_rows

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
BASE = yaml.safe_load((REPO / "config.yaml").read_text())


def config_of(**changes) -> dict:
    config = copy.deepcopy(BASE)
    config.update(changes)
    return validate_config(config, SCHEMA)


def harness_repetitions(cost_s, timed_s, inner_repeats, budget_s, monkeypatch):
    """What ``job_rows.Repetitions`` does with repetitions of ``cost_s`` wall seconds and
    ``timed_s`` inside the clock, on a fake clock: (performed, kept)."""
    now = [0]
    monkeypatch.setattr(job_rows.time, "perf_counter_ns", lambda: now[0])
    rows = job_rows.Repetitions(inner_repeats, budget_s)
    performed = 0
    while rows.more():
        now[0] += int(cost_s * 1e9)
        performed += 1
        rows.add({"seconds": timed_s})
    return performed, len(rows.result())


@pytest.mark.parametrize(
    ("cost_s", "timed_s", "inner_repeats", "budget_s"),
    [
        (0.1, 0.05, 5, 3),  # cheap: a warm-up and every repetition
        (2.0, 1.0, 5, 3),  # cheap but dear with its preparation: a warm-up and one more
        (30.0, 25.0, 5, 3),  # dearer than the budget: one, kept
        (0.5, 0.4, 1, 3),  # one repetition asked: no warm-up
        (0.5, 0.4, 3, 0),  # no budget: one, kept
    ],
)
def test_repetitions_follow_the_harness_rule(cost_s, timed_s, inner_repeats, budget_s, monkeypatch):
    assert estimate.repetitions(cost_s, timed_s, inner_repeats, budget_s) == harness_repetitions(
        cost_s, timed_s, inner_repeats, budget_s, monkeypatch
    )


def test_more_rigor_more_operations_and_time():
    fast, default, rigorous = (
        estimate.estimate(config_of(rigor=name)) for name in ("fast", "default", "rigorous")
    )
    assert fast.timed_operations < default.timed_operations < rigorous.timed_operations
    assert fast.wall_s < default.wall_s < rigorous.wall_s
    # twice the stores: about twice the work, never less
    assert rigorous.timed_s == pytest.approx(2 * default.timed_s, rel=1e-6)
    # a store job and a read job per store, the small stores sharing theirs (1, 10 and
    # 100; 1,000 and 10,000; 100,000 alone): 3 per method and repeat
    assert default.jobs == 2 * 4 * 3 * rigor.PRESETS["default"]["repeats"]
    one_each = estimate.estimate(config_of(small_store_bytes=0))
    assert one_each.jobs == 2 * 4 * len(BASE["cutoffs"]) * rigor.PRESETS["default"]["repeats"]
    assert one_each.timed_operations == default.timed_operations
    assert one_each.wall_s > default.wall_s
    # the timed work is part of the wall time
    for planned in (fast, default, rigorous):
        assert planned.timed_s < planned.wall_s


def test_a_slower_machine_is_estimated_slower():
    config = config_of()
    here, slower = estimate.estimate(config, 1.0), estimate.estimate(config, 2.0)
    assert 1.3 * here.wall_s < slower.wall_s <= 2 * here.wall_s
    assert slower.timed_operations <= here.timed_operations  # fewer fit in the budget


def test_encoded_variants_take_png_speeds_and_unknown_methods_a_fallback():
    assert estimate.speeds_of("wds", {"encoding": "png"}) == estimate.ENCODED
    assert estimate.speeds_of("lmdb", {}) == estimate.REFERENCE["lmdb"]
    assert estimate.speeds_of("arrow", {}) == estimate.FALLBACK


def test_an_encoding_and_codec_cost_what_they_cost_beyond_png_through_pillow():
    png = estimate.speeds_of("png", {})
    assert estimate.speeds_of("png", {"encoding": "png", "codec": "pillow"}) == png
    jxl = estimate.speeds_of("png", {"encoding": "jpegxl"})  # imagecodecs, its default
    assert jxl.store_mb_s < png.store_mb_s and jxl.whole_warm_mb_s < png.whole_warm_mb_s
    fast_jpeg = estimate.speeds_of("lmdb", {"encoding": "jpeg", "codec": "simplejpeg"})
    pillow_jpeg = estimate.speeds_of("lmdb", {"encoding": "jpeg"})
    assert fast_jpeg.whole_warm_mb_s > pillow_jpeg.whole_warm_mb_s
    assert fast_jpeg.single_warm_s < pillow_jpeg.single_warm_s
    # per image, AVIF's encoder costs more at 256x256 than at 32x32, but less per pixel
    small = estimate.codec_seconds(estimate.CODEC_US[("avif", "pillow")], 32 * 32 * 3)
    large = estimate.codec_seconds(estimate.CODEC_US[("avif", "pillow")], 256 * 256 * 3)
    assert small[0] < large[0] < 64 * small[0]


def test_the_announcement_names_operations_estimate_and_calibration():
    factor = estimate.calibrate(rounds=1)
    assert factor > 0
    text = estimate.announcement(config_of(rigor="fast"), factor=1.25)
    assert text.startswith("Plan: 24 stores and ")
    assert "timed operations of" in text and "Estimated wall time here: about " in text
    assert f"at 0.80x the speed of {estimate.REFERENCE_MACHINE}" in text
    assert estimate.minutes(59.6) == "1 min 00 s" and estimate.minutes(12) == "12 s"
