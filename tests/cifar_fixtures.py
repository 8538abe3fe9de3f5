"""Build tiny CIFAR-10 python archives in the official layout and pickle format.

Batches are protocol-2 pickles of dicts with byte-string keys (b"data": uint8 (N, 3072)
in R-plane, G-plane, B-plane order; b"labels": list of int), inside
``cifar-10-batches-py/`` of a gzipped tar, like ``cifar-10-python.tar.gz``.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

BATCH_DIR = "cifar-10-batches-py"


def make_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (count, 32, 32, 3) uint8 with smooth structure plus noise, and labels 0..9."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:32, 0:32]
    base = np.stack([x * 8, y * 8, (x + y) * 4], axis=-1).astype(np.int16)
    noise = rng.integers(-20, 20, size=(count, 32, 32, 3), dtype=np.int16)
    shift = rng.integers(0, 64, size=(count, 1, 1, 3), dtype=np.int16)
    images = np.clip(base[None] + noise + shift, 0, 255).astype(np.uint8)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    return images, labels


# scikit-image's colour photographs (shipped with it, no download), for natural images.
COLOUR_PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")


def photo_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (count, 32, 32, 3) uint8 made as CIFAR-10's were, from real photographs: a
    random square crop (a fifth to all of the short side) of one of scikit-image's colour
    photographs, downscaled to 32x32 with Pillow's antialiasing; labels are the
    photograph (0..4). Natural images, unlike ``make_images``' smooth ramps and noise."""
    from PIL import Image

    from imgbench.data import photos

    photographs = photos.photographs(list(COLOUR_PHOTOGRAPHS))
    views = [photographs[name][0] for name in COLOUR_PHOTOGRAPHS]  # one view each
    rng = np.random.default_rng(seed)
    images = np.empty((count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, len(views), size=count).astype(np.uint8)
    for index, label in enumerate(labels):
        photo = views[label]
        height, width = photo.shape[:2]
        side = int(rng.uniform(0.2, 1.0) * min(height, width))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side, :3])
        images[index] = np.asarray(crop.resize((32, 32), Image.LANCZOS))
    return images, labels


def batch_bytes(images: np.ndarray, labels: np.ndarray, name: str) -> bytes:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {
        b"batch_label": name.encode(),
        b"labels": [int(label) for label in labels],
        b"data": np.ascontiguousarray(data),
        b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(len(images))],
    }
    return pickle.dumps(batch, protocol=2)


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(f"{BATCH_DIR}/{name}")
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def make_archive(
    path: Path,
    batch_sizes: tuple[int, ...] = (3, 4, 2, 5, 1),
    seed: int = 0,
    *,
    extra_members: dict[str, bytes] | None = None,
    skip_batches: tuple[str, ...] = (),
    make=make_images,
) -> tuple[Path, str, np.ndarray, np.ndarray]:
    """Write an archive with data_batch_1..5 of the given sizes (plus test_batch and
    batches.meta) of images from ``make(count, seed)`` (``make_images``, or
    ``photo_images`` for natural ones); returns (path, md5, images, labels) of the
    training batches in order."""
    path = Path(path)
    all_images, all_labels = make(sum(batch_sizes) + 2, seed)
    start = 0
    train_images, train_labels = [], []
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "batches.meta", pickle.dumps({b"label_names": [b"c"] * 10}, protocol=2))
        for number, size in enumerate(batch_sizes, start=1):
            name = f"data_batch_{number}"
            images = all_images[start : start + size]
            labels = all_labels[start : start + size]
            start += size
            if name in skip_batches:
                continue
            _add(tar, name, batch_bytes(images, labels, name))
            train_images.append(images)
            train_labels.append(labels)
        _add(tar, "test_batch", batch_bytes(all_images[start:], all_labels[start:], "test"))
        for name, payload in (extra_members or {}).items():
            _add(tar, name, payload)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    return path, md5, np.concatenate(train_images), np.concatenate(train_labels)
