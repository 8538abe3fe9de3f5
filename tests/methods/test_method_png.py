"""The png method (one image file per image plus labels.csv): its files, its package and
codec version, the compression level and the random-access advice per file."""

from __future__ import annotations

import json

import numpy as np
from method_helpers import (
    assert_packages,
    random_set,
    store_fresh,
)

from imgbench.methods import png as png_method


def smooth_set(count: int, size: int = 32):
    """Compressible images (gradients), so compression levels change the file size."""
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1) % 256
    images = np.stack([(base + i) % 256 for i in range(count)]).astype(np.uint8)
    return images, (np.arange(count) % 10).astype(np.uint8)


def test_png_declares_pillow_and_reports_zlib():
    assert_packages(png_method, ("Pillow",), ["zlib"])


def test_png_writes_one_file_per_image_plus_labels_csv(tmp_path):
    images, labels = random_set(13, seed=6)
    store_dir = store_fresh("png", tmp_path / "store", images, labels)
    names = sorted(p.name for p in store_dir.iterdir())
    assert len(names) == 15
    assert set(names) == {f"{i}.png" for i in range(13)} | {"labels.csv", "format.json"}
    assert json.loads((store_dir / "format.json").read_text()) == {
        "encoding": "png",
        "codec": "pillow",
        "shape": [32, 32, 3],
    }
    rows = (store_dir / "labels.csv").read_text().splitlines()
    assert rows[0] == "index,label"
    assert rows[1:] == [f"{i},{label}" for i, label in enumerate(labels.tolist())]


def test_png_compress_level_reaches_the_encoder(tmp_path):
    images, labels = smooth_set(4)
    stored = store_fresh("png", tmp_path / "l0", images, labels, {"compress_level": 0})
    packed = store_fresh("png", tmp_path / "l9", images, labels, {"compress_level": 9})
    size_stored = sum(p.stat().st_size for p in stored.glob("*.png"))
    size_packed = sum(p.stat().st_size for p in packed.glob("*.png"))
    assert size_stored > 2 * size_packed
