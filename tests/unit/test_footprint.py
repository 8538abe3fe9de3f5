"""footprint: disk usage per store and its page."""

from __future__ import annotations

import numpy as np
import pytest
from results_fixtures import DISK, markdown_section, table_rows

from imgbench.results import footprint


def test_disk_usage_table(tables):
    _, _, disk = tables
    assert len(disk) == 4
    table = disk.set_index(["method", "cutoff"])
    for (method, cutoff), values in DISK.items():
        point = table.loc[(method, cutoff)]
        median = int(np.median(values))
        assert point["bytes_on_disk"] == median
        assert (point["min_bytes_on_disk"], point["max_bytes_on_disk"]) == (
            min(values),
            max(values),
        )
        assert point["bytes_apparent"] == median - 1000
        assert point["n_files"] == (cutoff + 1 if method == "png" else 2)
        assert point["bytes_per_image"] == pytest.approx(median / cutoff)
        assert point["raw_bytes_per_image"] == 32 * 32 * 3
        assert point["overhead_vs_raw"] == pytest.approx(median / cutoff / 3072)
    assert table.loc[("png", 10), "human_on_disk"] == "40.0 KiB"
    assert table.loc[("npy", 100), "human_on_disk"] == "304.0 KiB"


def test_disk_usage_markdown(tables):
    _, _, disk = tables
    text = footprint.disk_usage_markdown(disk)
    section = markdown_section(text, "## 32x32 images")
    assert "| 32x32 method \\ images | 10 | 100 |" in section
    cells = table_rows(section)
    assert cells["npy"] == ["36.0 KiB (36,864 B)", "304.0 KiB (311,296 B)"]
    assert cells["png"] == ["40.0 KiB (40,960 B)", "400.0 KiB (409,600 B)"]
    per_image = table_rows(markdown_section(text, "## Bytes on disk per image"))
    # Largest cutoff: 311,296 B / 100 images = 3,112.96 B, 1.01x the raw 3,072 B.
    assert per_image["npy"] == ["3.0 KiB (1.01x raw)"]
    assert per_image["png"] == ["4.0 KiB (1.33x raw)"]
