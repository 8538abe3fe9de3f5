"""The npy baseline (images.npy and labels.npy): numpy only, ``np.save``'s bytes written
chunk by chunk, its header, and the random-access advice on its memory map."""

from __future__ import annotations

import io

import numpy as np
import pytest
from method_helpers import (
    random_set,
    store_fresh,
)

from imgbench.data.pool import tile
from imgbench.methods import npy as npy_method


def test_npy_needs_no_package_beyond_numpy():
    assert npy_method.PACKAGES == ()
    assert not hasattr(npy_method, "library_versions")


def test_npy_store_files(tmp_path):
    images, labels = random_set(3)
    store_dir = store_fresh("npy", tmp_path / "store", images, labels)
    assert sorted(p.name for p in store_dir.iterdir()) == ["images.npy", "labels.npy"]


@pytest.mark.parametrize("chunk_images", [4, 1])
def test_a_chunked_store_is_np_save_byte_for_byte(chunk_images, tmp_path):
    rng = np.random.default_rng(2)
    pool_images = rng.integers(0, 256, size=(7, 8, 8, 3), dtype=np.uint8)
    pool_labels = rng.permutation(7).astype(np.uint8)
    stream = tile(pool_images, pool_labels, 50, chunk_images=chunk_images)
    whole = pool_images[np.arange(50) % 7]
    one_piece = store_fresh("npy", tmp_path / "whole", whole, stream.labels.copy())
    chunked = store_fresh("npy", tmp_path / "chunked", stream, stream.labels)
    for name in ("images.npy", "labels.npy"):
        assert (chunked / name).read_bytes() == (one_piece / name).read_bytes()
    reference = tmp_path / "np_save.npy"
    np.save(reference, whole)
    assert (chunked / "images.npy").read_bytes() == reference.read_bytes()


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((50, 8, 8, 3), np.uint8), ((0, 16, 16, 3), np.uint8), ((3, 5), np.float32), ((7,), "<i8")],
    ids=str,
)
def test_npy_header_is_the_one_np_save_writes(shape, dtype):
    array = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    ours = io.BytesIO()
    npy_method.write_header(ours, array.shape, array.dtype)
    ours.write(array.tobytes())
    theirs = io.BytesIO()
    np.save(theirs, array)
    assert ours.getvalue() == theirs.getvalue()
    ours.seek(0)
    assert np.array_equal(np.load(ours), array)
    ours.seek(0)
    assert npy_method.read_header(ours) == (shape, np.dtype(dtype))
    assert ours.tell() % 64 == 0  # header padded so the data is aligned
