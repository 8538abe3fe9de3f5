"""The one byte formatter."""

import math

import pytest

from imgbench.system.units import human_bytes


def test_binary_units_with_one_decimal():
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5.9 * 2**20) == "5.9 MiB"
    assert human_bytes(3 * 2**40) == "3.0 TiB"
    assert human_bytes(2**60) == f"{2**60 / 2**40:.1f} TiB"


def test_significant_digits_for_ticks_and_missing_counts():
    assert human_bytes(4096, significant=3) == "4 KiB"
    assert human_bytes(16.5 * 2**20, significant=3) == "16.5 MiB"
    assert human_bytes(None) == "n/a"
    assert human_bytes(math.nan) == "n/a"


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536 * 1024, "1.5 MiB"),
        (3 * 1024**4, "3.0 TiB"),
        (float("nan"), "n/a"),
    ],
)
def test_human_bytes(count, text):
    assert human_bytes(count) == text
