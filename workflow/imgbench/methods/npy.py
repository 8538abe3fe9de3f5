"""Baseline: the raw pixel array in one ``.npy`` file (the physical limit of plain bytes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DESCRIPTION = "raw .npy array (baseline)"


def store(store_dir: Path, images: np.ndarray, labels: np.ndarray, *, fsync: bool) -> None:
    np.save(store_dir / "images.npy", images, allow_pickle=False)
    np.save(store_dir / "labels.npy", labels, allow_pickle=False)


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    images = np.load(store_dir / "images.npy", allow_pickle=False)
    labels = np.load(store_dir / "labels.npy", allow_pickle=False)
    return images, labels
