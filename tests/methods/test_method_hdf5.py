"""The hdf5 method (one file, images and labels datasets): its package and C library, the
layout its options make, and the random-access advice on HDF5's own file descriptor."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from method_helpers import (
    ENV,
    assert_packages,
    random_set,
    store_fresh,
)

from imgbench.harness import measure
from imgbench.harness.point import Point
from imgbench.methods import hdf5 as hdf5_method


def test_hdf5_declares_h5py_and_reports_the_hdf5_c_library():
    assert_packages(hdf5_method, ("h5py",), ["hdf5_c"])


@pytest.mark.parametrize("chunks", ["none", "image"])
@pytest.mark.parametrize("compression", ["none", "gzip", "lzf"])
def test_hdf5_layout_follows_options(chunks, compression, tmp_path):
    images, labels = random_set(5, seed=7)
    options = {"chunks": chunks, "compression": compression}
    store_dir = store_fresh("hdf5", tmp_path / "store", images, labels, options)
    assert sorted(p.name for p in store_dir.iterdir()) == [hdf5_method.FILE_NAME]
    with h5py.File(store_dir / hdf5_method.FILE_NAME, "r") as handle:
        dataset = handle["images"]
        assert dataset.dtype == np.uint8
        if chunks == "none" and compression == "none":
            assert dataset.chunks is None
        else:  # compression implies per-image chunks
            assert dataset.chunks == (1, 32, 32, 3)
        assert dataset.compression == (None if compression == "none" else compression)


def test_hdf5_gzip_level_is_passed(tmp_path):
    images, labels = random_set(3)
    options = {"chunks": "image", "compression": "gzip", "compression_opts": 7}
    store_dir = store_fresh("hdf5", tmp_path / "store", images, labels, options)
    with h5py.File(store_dir / hdf5_method.FILE_NAME, "r") as handle:
        assert handle["images"].compression_opts == 7


def test_run_store_passes_variant_options(tmp_path):
    images, labels = random_set(3)
    store_dir = tmp_path / "store"
    point = Point("hdf5", variant="lzf", options={"compression": "lzf"}, fsync="none")
    (row,) = measure.run_store(point, (images, labels), store_dir, env=ENV)
    assert row["variant"] == "lzf"
    with h5py.File(store_dir / hdf5_method.FILE_NAME, "r") as handle:
        assert handle["images"].compression == "lzf"
