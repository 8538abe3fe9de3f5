"""HDF5: one file with an ``images`` and a ``labels`` dataset, read as whole arrays."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

DESCRIPTION = "HDF5 (one file, contiguous datasets)"
FILE_NAME = "images.h5"


def store(store_dir: Path, images: np.ndarray, labels: np.ndarray, *, fsync: bool) -> None:
    # Native uint8, contiguous, no compression: the fastest layout for whole-array reads.
    # HDF5 has no fsync of its own (H5Fflush stops at the OS); the harness fsyncs the file.
    with h5py.File(store_dir / FILE_NAME, "w", libver="latest") as handle:
        handle.create_dataset("images", data=images)
        handle.create_dataset("labels", data=labels)


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(store_dir / FILE_NAME, "r") as handle:
        images_ds = handle["images"]
        images = np.empty(images_ds.shape, dtype=images_ds.dtype)
        if images.size:
            images_ds.read_direct(images)
        labels = handle["labels"][()]
    return images, labels
