"""codecs: the summary's "Codecs" section (a table of the encoded series with their codec,
bytes per image, PSNR, store and warm read speeds, and the verdicts on decoders and
encodings), and the codec of rows written before ``codec`` existed."""

from __future__ import annotations

import statistics

import pandas as pd
import pytest
from codecs_fixtures import (
    FACTORS,
    JPEG,
    PSNR_STEP,
    SERIES,
    codec_rows,
    codec_tables,
    name,
    per_image,
)
from results_fixtures import make_rows, markdown_section, summary, table_body

from imgbench.results import codecs, load

HEADING = "## Codecs"


def section_of(tmp_path, series=SERIES, **options) -> str:
    rows, stats, disk = codec_tables(tmp_path, codec_rows(series, **options))
    return codecs.codecs_markdown(rows, stats, disk)


def encoded_names(series=SERIES) -> set[str]:
    return {name(*key) for key, spec in series.items() if spec.codec != "none"}


def verdict(section: str, start: str) -> str:
    """The verdict line starting with ``start``."""
    lines = [line for line in section.splitlines() if line.startswith(f"- {start}")]
    assert len(lines) == 1, (start, lines)
    return lines[0]


def interval(value: float) -> str:
    """A median's interval over the three stores of ``codec_rows``, as the table gives it."""
    return f"{value:,.0f} [{value * min(FACTORS):,.0f}, {value * max(FACTORS):,.0f}]"


# --- the table ---------------------------------------------------------------------------------


def test_the_table_lists_each_encoded_series_with_codec_bytes_psnr_and_speeds(tmp_path):
    section = section_of(tmp_path)
    assert section.startswith(f"\n{HEADING}")
    assert "not a codec micro-benchmark" in section
    assert "### 32x32, 100 images" in section  # the largest cutoff
    header = section[section.index("\n|") + 1 :].splitlines()[0]
    assert header == (
        "| method | encoding | codec | bytes per image | PSNR | store images/s (encode + "
        "write) | warm whole read images/s, 1 reader | warm shuffled read images/s, 1 reader |"
    )  # warm reads only: no cold column
    body = table_body(section)
    assert {cells[0] for cells in body} == encoded_names()  # lmdb's raw series left out
    assert "lmdb" not in {cells[0] for cells in body}
    # sorted by encoding, then codec
    order = [(cells[1], cells[2]) for cells in body]
    assert order == sorted(order)
    for cells in body:
        method, _, variant = cells[0].partition(":")
        spec = SERIES[(method, variant)]
        assert cells[1:4] == [spec.encoding, spec.codec, f"{per_image(method, variant):,.0f} B"]
        assert cells[5:] == [interval(spec.store), interval(spec.whole), interval(spec.shuffled)]
        if spec.psnr is None:
            assert cells[4] == "exact"
        else:
            psnr = statistics.median(spec.psnr[0] + step for step in PSNR_STEP)
            worst = min(spec.psnr[1] + step for step in PSNR_STEP)
            assert cells[4] == f"{psnr:.1f} dB (worst {worst:.1f} dB)"
            assert "exact" not in cells[4]


def test_the_section_names_the_largest_cutoff_with_two_encoded_series(tmp_path):
    rows = [
        r
        for r in codec_rows()
        if r["cutoff"] == 10 or (r["method"], r["variant"]) in {("lmdb", "png_pillow")}
    ]
    rows_, stats, disk = codec_tables(tmp_path, rows)
    section = codecs.codecs_markdown(rows_, stats, disk)
    assert "### 32x32, 10 images" in section and "100 images" not in section
    body = table_body(section)
    assert {cells[0] for cells in body} == encoded_names()
    cells = {c[0]: c for c in body}["lmdb:qoi"]
    assert cells[3] == f"{per_image('lmdb', 'qoi', 10):,.0f} B"


# --- the verdicts ----------------------------------------------------------------------------


def test_a_clearly_fastest_decoder_is_named_and_overlapping_ones_are_not(tmp_path):
    section = section_of(tmp_path)
    for read, speed in (("whole", "whole"), ("shuffled", "shuffled")):
        line = verdict(section, f"lmdb, png, warm {read} read, fastest decoder")
        opencv = getattr(SERIES[("lmdb", "png_opencv")], speed)
        assert f"fastest decoder: **opencv** ({opencv:,.0f} images/s" in line
        # jpeg by pillow and simplejpeg: their intervals overlap
        line = verdict(section, f"lmdb, {JPEG}, warm {read} read, fastest decoder")
        assert line.endswith("no clear difference between simplejpeg and pillow.")
        assert "**" not in line
    # one codec per encoding: no decoder verdict (qoi, webp)
    assert "qoi, warm" not in section and "webp lossless, warm" not in section


def test_a_decoder_within_another_codecs_interval_is_no_clear_difference(tmp_path):
    close = dict(SERIES)
    spng = SERIES[("lmdb", "png_spng")]
    close[("lmdb", "png_opencv")] = SERIES[("lmdb", "png_opencv")]._replace(
        whole=spng.whole * 1.01, shuffled=spng.shuffled * 1.01
    )
    section = section_of(tmp_path, close)
    line = verdict(section, "lmdb, png, warm shuffled read, fastest decoder")
    assert line.endswith("no clear difference between opencv and spng.")
    # and the other way: simplejpeg made clearly faster is named
    faster = dict(SERIES)
    pillow = SERIES[("lmdb", "jpeg95_pillow")]
    faster[("lmdb", "jpeg95_simplejpeg")] = SERIES[("lmdb", "jpeg95_simplejpeg")]._replace(
        whole=pillow.whole * 1.5, shuffled=pillow.shuffled * 1.5
    )
    section = section_of(tmp_path, faster)
    line = verdict(section, f"lmdb, {JPEG}, warm shuffled read, fastest decoder")
    assert "fastest decoder: **simplejpeg**" in line


def test_a_busy_codec_is_left_out_of_the_decoder_verdict(tmp_path):
    section = section_of(tmp_path, busy=frozenset({"lmdb:png_opencv"}))
    line = verdict(section, "lmdb, png, warm shuffled read, fastest decoder")
    assert "**opencv**" not in line and "(opencv left out: busy)" in line
    assert "**spng**" in line  # spng 19,000 clear of pillow's 15,000
    assert "(busy)" in {c[0]: c for c in table_body(section)}["lmdb:png_opencv"][-1]


def test_smallest_and_fastest_reading_lossless_encodings_per_method(tmp_path):
    section = section_of(tmp_path)
    line = verdict(section, "lmdb, smallest lossless encoding")
    # spng's 1,900 B (1,900-1,941 over stores) clear of pillow's 2,000 B
    assert "**png (spng)** 1,900 B (1,900–1,941 over stores); next png (pillow) 2,000 B" in line
    line = verdict(section, "png, smallest lossless encoding")
    assert "**webp lossless (pillow)** 1,500 B" in line
    line = verdict(section, "lmdb, fastest-reading lossless encoding, warm shuffled read")
    assert "**qoi (imagecodecs)** (60,000 images/s" in line
    assert "jpeg" not in line  # lossy series take no part
    line = verdict(section, "png, fastest-reading lossless encoding, warm shuffled read")
    assert line.endswith(
        "no clear difference between webp lossless (pillow) and qoi (imagecodecs)."
    )


def test_close_bytes_are_no_clear_smallest(tmp_path):
    close = dict(SERIES)
    close[("lmdb", "png_spng")] = SERIES[("lmdb", "png_spng")]._replace(bytes_per_image=1990)
    line = verdict(section_of(tmp_path, close), "lmdb, smallest lossless encoding")
    assert "no clear difference between png (spng) and png (pillow)" in line
    assert "**" not in line


def test_the_fastest_reading_encoding_uses_the_whole_read_without_a_shuffled_one(tmp_path):
    rows = [r for r in codec_rows() if r["read_pattern"] != "shuffled"]
    loaded, stats, disk = codec_tables(tmp_path, rows)
    section = codecs.codecs_markdown(loaded, stats, disk)
    assert "shuffled" not in section
    line = verdict(section, "lmdb, fastest-reading lossless encoding, warm whole read")
    assert "**qoi (imagecodecs)** (90,000 images/s" in line


# --- nothing to say ------------------------------------------------------------------------


def test_no_section_without_two_encoded_series(tmp_path, tables):
    rows, stats, disk = tables  # png and npy written before encodings were recorded
    assert codecs.codecs_markdown(rows, stats, disk) == ""
    assert HEADING not in summary(rows, stats, disk)
    one = {k: v for k, v in SERIES.items() if k in {("lmdb", "png_pillow"), ("lmdb", "default")}}
    assert section_of(tmp_path, one) == ""


# --- in the summary ----------------------------------------------------------------------------


def test_the_summary_has_the_section_after_the_reads_and_before_the_device_bytes(tmp_path):
    rows = make_rows() + codec_rows()  # make_rows' rows carry no codec: none for them
    loaded, stats, disk = codec_tables(tmp_path, rows)
    text = summary(loaded, stats, disk)
    assert text.count(HEADING) == 1
    assert text.index("## Access patterns") < text.index(HEADING)
    assert text.index(HEADING) < text.index("## Bytes from the device")
    section = markdown_section(text, HEADING)
    assert {cells[0] for cells in table_body(section)} == encoded_names()  # not png, npy


# --- old rows --------------------------------------------------------------------------------


def test_rows_without_codec_load_as_pillow_where_encoded_and_none_where_raw(tmp_path):
    rows = make_rows()[:6] + codec_rows()
    loaded, stats, disk = codec_tables(tmp_path, rows, drop=("codec",))
    by_series = loaded.groupby(["method", "variant"])["codec"].unique()
    assert list(by_series[("lmdb", "default")]) == ["none"]  # encoding raw
    assert list(by_series[("png", "default")]) == ["none"]  # no encoding recorded
    for key, spec in SERIES.items():
        if spec.codec != "none":
            assert list(by_series[key]) == ["pillow"], key
    section = codecs.codecs_markdown(loaded, stats, disk)
    assert {cells[2] for cells in table_body(section)} == {"pillow"}
    assert "fastest decoder" not in section  # one codec per encoding
    assert "**png (pillow" in verdict(section, "lmdb, smallest lossless encoding")


def test_with_defaults_fills_codec_and_keeps_given_ones():
    frame = pd.DataFrame(
        {
            "encoding": ["raw", "png", float("nan"), JPEG, "qoi", ""],
            "codec": [float("nan"), "", float("nan"), "simplejpeg", "imagecodecs", ""],
        }
    )
    filled = load.with_defaults(frame)
    assert filled["codec"].tolist() == [
        "none",
        "pillow",
        "none",
        "simplejpeg",
        "imagecodecs",
        "none",
    ]
    pd.testing.assert_frame_equal(load.with_defaults(filled), filled)  # idempotent
    without = load.with_defaults(frame.drop(columns="codec"))
    assert without["codec"].tolist() == ["none", "pillow", "none", "pillow", "pillow", "none"]
    assert load.with_defaults(pd.DataFrame({"x": [1]}))["codec"].tolist() == ["none"]


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ([("whole", "on"), ("shuffled", "on")], ("shuffled", "on")),
        ([("whole", "on"), ("random_single", "on")], ("whole", "on")),
        ([("random_single", "on")], ("random_single", "on")),
        ([], None),
    ],
)
def test_the_main_warm_read_is_shuffled_else_whole(kinds, expected):
    assert codecs.main_kind(kinds) == expected
