"""resize: deterministic bicubic upscaling with Pillow, in chunks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgbench.data import resize


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(42)
    return rng.integers(0, 256, size=(9, 32, 32, 3), dtype=np.uint8)


def test_filter_is_bicubic():
    assert resize.FILTER == Image.Resampling.BICUBIC


def test_shape_and_dtype(images):
    out = resize.resize_images(images, 48)
    assert out.shape == (9, 48, 48, 3)
    assert out.dtype == np.uint8


def test_deterministic(images):
    first = resize.resize_images(images, 64)
    second = resize.resize_images(images.copy(), 64)
    assert first.tobytes() == second.tobytes()


def test_equals_pillow_with_the_documented_filter(images):
    out = resize.resize_images(images, 64)
    for image, resized in zip(images, out, strict=True):
        expected = np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.BICUBIC))
        np.testing.assert_array_equal(resized, expected)
    # Not some other filter: nearest neighbour gives different pixels.
    nearest = np.asarray(Image.fromarray(images[0]).resize((64, 64), Image.Resampling.NEAREST))
    assert not np.array_equal(out[0], nearest)


def test_size_32_is_identity(images):
    np.testing.assert_array_equal(resize.resize_images(images, 32), images)


def test_chunk_length():
    assert resize.chunk_length(64, 64 * 64 * 3 * 5) == 5
    assert resize.chunk_length(64, 64 * 64 * 3 * 5 + 100) == 5
    assert resize.chunk_length(512, 10) == 1  # never zero


def resize_to(tmp_path, images, name, count, chunk_bytes):
    source = tmp_path / "source.npy"
    np.save(source, images)
    destination = tmp_path / name
    resize.resize_file(source, destination, 64, count, chunk_bytes)
    return destination


def test_chunked_equals_unchunked(tmp_path, images):
    whole = resize_to(tmp_path, images, "whole.npy", 9, 1 << 30)
    # Two images per chunk: 9 images in 5 chunks, the last one short.
    chunked = resize_to(tmp_path, images, "chunked.npy", 9, 2 * 64 * 64 * 3)
    tiny = resize_to(tmp_path, images, "tiny.npy", 9, 1)
    assert whole.read_bytes() == chunked.read_bytes() == tiny.read_bytes()
    out = np.load(whole)
    np.testing.assert_array_equal(out, resize.resize_images(images, 64))
    assert not list(tmp_path.glob("*.part"))


def test_resize_file_first_count_images(tmp_path, images):
    destination = resize_to(tmp_path, images, "four.npy", 4, 3 * 64 * 64 * 3)
    out = np.load(destination)
    assert out.shape == (4, 64, 64, 3)
    np.testing.assert_array_equal(out, resize.resize_images(images[:4], 64))


def test_resize_file_refuses_too_many(tmp_path, images):
    with pytest.raises(ValueError, match="holds 9 images, 10 asked for"):
        resize_to(tmp_path, images, "too_many.npy", 10, 1 << 20)
    assert not (tmp_path / "too_many.npy").exists()
    assert not (tmp_path / "too_many.npy.part").exists()
