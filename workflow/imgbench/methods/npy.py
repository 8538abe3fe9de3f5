"""Baseline: the raw pixel array in one ``.npy`` file (the physical limit of plain bytes)."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import numpy as np

from . import blocks, resolve_options

DESCRIPTION = "raw .npy array (baseline)"
OPTIONS: dict = {}


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: two .npy files (128-byte headers)."""
    return blocks(128 + n_images * image_bytes) + blocks(128 + n_images)


def store(
    store_dir: Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    options: dict | None = None,
) -> None:
    resolve_options(sys.modules[__name__], options)  # no options; refuses unknown names
    np.save(store_dir / "images.npy", images, allow_pickle=False)
    np.save(store_dir / "labels.npy", labels, allow_pickle=False)


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    images = np.load(store_dir / "images.npy", allow_pickle=False)
    labels = np.load(store_dir / "labels.npy", allow_pickle=False)
    return images, labels


class Reader:
    """Memory-maps the array; a gather copies only the requested images. Without
    readahead the map is advised ``MADV_RANDOM`` (a fault reads its own page only)."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        self.images = np.load(Path(store_dir) / "images.npy", mmap_mode="r")
        self.labels = np.load(Path(store_dir) / "labels.npy")
        if not readahead and self.images.size:
            self.images._mmap.madvise(mmap.MADV_RANDOM)

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        return np.array(self.images[indices]), self.labels[indices]

    def close(self) -> None:
        self.images = None


def open_reader(store_dir: Path, *, readahead: bool = True) -> Reader:
    return Reader(store_dir, readahead=readahead)
