"""series: names, descriptions and the points tables and figures start from."""

from __future__ import annotations

import pandas as pd

from imgbench.results import series


def test_series_name():
    assert series.series_name("png", "default") == "png"
    assert series.series_name("png", "level1") == "png:level1"


def test_baseline_is_stores_and_whole_reads_with_readahead_on():
    stats = pd.DataFrame(
        {
            "operation": ["store", "read", "read", "read", "read"],
            "read_pattern": ["n/a", "whole", "whole", "sequential", "shuffled"],
            "readahead": ["n/a", "on", "off", "on", "on"],
            "readers": [1, 1, 1, 1, 1],
        }
    )
    assert list(series.store_and_whole_reads(stats).index) == [0, 1]
    only_off = stats.assign(readahead=["n/a", "off", "off", "on", "on"])
    assert list(series.store_and_whole_reads(only_off).index) == [0, 1, 2]


def test_rows_without_a_description_name_the_method(tables):
    _, stats, disk = tables[:3]
    assert series.method_descriptions(stats) == {"npy": "npy", "png": "png"}
    assert series.method_descriptions(disk.drop(columns="method_description")) == {
        "npy": "npy",
        "png": "png",
    }
    assert series.series_label("zarr:fast", {}) == "zarr [fast]"
