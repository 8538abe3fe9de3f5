"""PNG files plus a CSV of labels, as in the article: one ``{i}.png`` per image."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

DESCRIPTION = "PNG files + labels.csv"
LABELS_FILE = "labels.csv"


def _image_path(store_dir: Path, index: int) -> Path:
    return store_dir / f"{index}.png"


def store(store_dir: Path, images: np.ndarray, labels: np.ndarray, *, fsync: bool) -> None:
    # Pillow's defaults (compress_level 6), as the article; format given to skip the lookup.
    for index, image in enumerate(images):
        Image.fromarray(image).save(_image_path(store_dir, index), format="PNG")
    with open(store_dir / LABELS_FILE, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "label"])
        writer.writerows(zip(range(len(labels)), labels.tolist(), strict=True))


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(store_dir / LABELS_FILE, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        labels = np.array([int(row[1]) for row in reader], dtype=np.uint8)
    count = len(labels)
    if count == 0:
        return np.empty((0, 0, 0, 0), dtype=np.uint8), labels
    with Image.open(_image_path(store_dir, 0)) as first:
        first_array = np.asarray(first)
    images = np.empty((count, *first_array.shape), dtype=first_array.dtype)
    images[0] = first_array
    for index in range(1, count):
        with Image.open(_image_path(store_dir, index)) as image:
            images[index] = np.asarray(image)
    return images, labels
