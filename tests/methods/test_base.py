"""The method base (``imgbench.methods._base``): what the method modules share, each piece
on its own; the contract suite (test_contract.py) checks the modules that use them."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest
from method_helpers import advised_random, random_set, record_fadvise

from imgbench.data.pool import tile
from imgbench.methods import _base, available_methods, batch_bounds


class CountingReader:
    def __init__(self, store_dir, *, readahead=True):
        self.store_dir, self.readahead = store_dir, readahead


def test_opener_opens_the_modules_reader_with_its_readahead(tmp_path):
    open_reader = _base.opener(CountingReader)
    reader = open_reader(tmp_path, readahead=False)
    assert isinstance(reader, CountingReader)
    assert (reader.store_dir, reader.readahead) == (tmp_path, False)
    assert open_reader(tmp_path).readahead is True
    with pytest.raises(TypeError):
        open_reader(tmp_path, False)  # readahead is keyword-only, as the contract says


def batches_of(images, labels):
    """A ``read_batches`` over fixed arrays, recording the batch sizes asked for."""
    asked = []

    def read_batches(store_dir, batch_images):
        asked.append(batch_images)
        for start, stop in batch_bounds(len(images), batch_images):
            yield images[start:stop].copy(), labels[start:stop].copy()

    return read_batches, asked


def test_read_from_batches_is_one_batch_of_the_whole_store(tmp_path):
    images, labels = random_set(11)
    read_batches, asked = batches_of(images, labels)
    got_images, got_labels = _base.read_from_batches(read_batches)(tmp_path)
    assert asked == [_base.WHOLE_STORE]
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.flags.owndata  # the batch itself, not a copy of a copy


def test_read_from_batches_joins_smaller_batches_and_reads_an_empty_store(tmp_path):
    images, labels = random_set(5)

    def in_twos(store_dir, batch_images):
        for start, stop in batch_bounds(5, 2):
            yield images[start:stop].copy(), labels[start:stop].copy()

    got_images, got_labels = _base.read_from_batches(in_twos)(tmp_path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    empty_images, empty_labels = _base.read_from_batches(lambda s, b: iter(()))(tmp_path)
    assert empty_images.shape == (0,) and empty_labels.shape == (0,)


def test_store_header_of_an_array_and_of_a_stream():
    images, labels = random_set(4, 16)
    header = _base.store_header(images, labels, encoding="png", extra=[1])
    assert header == {
        "count": 4,
        "shape": [16, 16, 3],
        "dtype": "uint8",
        "labels_dtype": "uint8",
        "encoding": "png",
        "extra": [1],
    }
    assert list(header) == ["count", "shape", "dtype", "labels_dtype", "encoding", "extra"]
    stream = tile(images, labels, 10)
    assert _base.store_header(stream, stream.labels)["count"] == 10


def test_check_lengths():
    images, labels = random_set(4)
    _base.check_lengths(images, labels)
    with pytest.raises(ValueError, match="4 images but 5 labels"):
        _base.check_lengths(images, np.zeros(5, np.uint8))


@pytest.mark.parametrize(
    ("allowed", "value", "rule"),
    [
        (_base.whole_number(1, "images"), 0, "a whole number of images of at least 1"),
        (_base.whole_number(1, "images"), True, "a whole number of images of at least 1"),
        (_base.whole_number(1), 2.0, "a whole number of at least 1"),
        (_base.byte_size(1 << 20), "big", "a whole number of bytes of at least 1048576 (1.0 MiB)"),
        (_base.byte_size(512), 511, "a whole number of bytes of at least 512"),
        (("none", "zstd"), "lz4", "one of none, zstd"),
        ((None, True, False), 1, "one of null, true, false"),
        (tuple(range(1, 101)), 0, "one of 1 to 100"),
    ],
    ids=str,
)
def test_option_rule_names_what_a_value_breaks(allowed, value, rule):
    assert _base.option_rule(allowed, value) == rule


@pytest.mark.parametrize(
    ("allowed", "value"),
    [
        (_base.whole_number(1), 1),
        (_base.byte_size(1 << 20), 1 << 30),
        (("none", "zstd"), "zstd"),
        ((False, True), False),
    ],
    ids=str,
)
def test_option_rule_accepts_values_within(allowed, value):
    assert _base.option_rule(allowed, value) is None


def test_check_choices_raises_an_option_error_in_parts():
    choices = {"size": _base.byte_size(1 << 20), "mode": ("a", "b")}
    defaults = {"size": 1 << 28, "mode": "a"}
    _base.check_choices("m", choices, defaults, defaults)
    with pytest.raises(_base.OptionError) as caught:
        _base.check_choices("m", choices, {**defaults, "size": 0}, defaults)
    error = caught.value
    assert (error.method, error.option, error.value) == ("m", "size", 0)
    assert error.fix == "set it to e.g. 268435456 (the default) or remove it"
    assert str(error) == (
        "method m option size must be a whole number of bytes of at least 1048576 (1.0 MiB), "
        "not 0; set it to e.g. 268435456 (the default) or remove it"
    )
    with pytest.raises(_base.OptionError, match=r"mode must be one of a, b, not 'c'; choose"):
        _base.check_choices("m", choices, {**defaults, "mode": "c"}, defaults)


def test_advise_random_advises_the_descriptor(tmp_path, monkeypatch):
    path = tmp_path / "file"
    path.write_bytes(b"x" * 8192)
    advised = record_fadvise(monkeypatch)
    fd = os.open(path, os.O_RDONLY)
    try:
        _base.advise_random(fd)
    finally:
        os.close(fd)
    assert advised_random(advised) == [str(path)]


def test_advise_random_map_advises_the_map(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"x" * 8192)
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        _base.advise_random_map(mapped)  # raises if the kernel refuses the advice
        assert mapped[:1] == b"x"


def test_pillow_codec_versions():
    everything = _base.pillow_codec_versions()
    assert set(everything) <= set(_base.PILLOW_CODECS) and "zlib" in everything
    assert all(v[0].isdigit() for v in everything.values())
    assert _base.pillow_codec_versions("zlib") == {"zlib": everything["zlib"]}


def test_the_base_is_no_method():
    assert "_base" not in available_methods()
