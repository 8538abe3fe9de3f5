"""pool: a pool of distinct images tiled to N, image i = pool[i mod P], in chunks."""

from __future__ import annotations

import numpy as np
import pytest

from imgbench.data import pool


def make_pool(count: int = 7, size: int = 4, seed: int = 3):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    return images, labels


def tiled_copy(images, labels, count):
    """The article's tiling, written out: the set concatenated with itself."""
    copies = -(-count // len(images))
    return np.concatenate([images] * copies)[:count], np.concatenate([labels] * copies)[:count]


@pytest.mark.parametrize("count", [1, 6, 7, 14, 20, 50])
@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_chunks_are_the_tiled_set_front_to_back(count, chunk):
    images, labels = make_pool()
    source = pool.tile(images, labels, count, chunk)
    expected_images, expected_labels = tiled_copy(images, labels, count)
    chunks = list(source.iter_chunks())
    # full chunks, except where one is cut at the end of the pool or of the set
    ends = {min(count, stop) for stop in range(len(images), count + len(images), len(images))}
    position = 0
    for piece in chunks:
        position += len(piece)
        assert 1 <= len(piece) <= chunk
        assert len(piece) == chunk or position in ends
    assert np.array_equal(np.concatenate(chunks), expected_images)
    assert np.array_equal(source.labels, expected_labels)
    assert source.shape == (count, 4, 4, 3) and len(source) == count
    assert source.nbytes == expected_images.nbytes and source.image_bytes == 48


def test_the_article_doubles_the_set():
    images, labels = make_pool(5)
    source = pool.tile(images, labels, 10)
    assert np.array_equal(source[0:10], np.concatenate([images, images]))
    assert np.array_equal(source.labels, np.concatenate([labels, labels]))


def test_take_batch_and_getitem_match_the_tiled_set():
    images, labels = make_pool()
    source = pool.tile(images, labels, 30, 4)
    expected, _ = tiled_copy(images, labels, 30)
    order = np.array([29, 0, 7, 7, 13, 22])
    assert np.array_equal(source.take(order), expected[order])
    assert np.array_equal(source.batch(5, 16), expected[5:16])  # wraps twice
    assert np.array_equal(source[8], expected[8]) and np.array_equal(source[-1], expected[29])
    assert np.array_equal(source[2:20:3], expected[2:20:3])
    with pytest.raises(IndexError):
        source.take([30])
    with pytest.raises(IndexError):
        source.batch(25, 31)
    with pytest.raises(IndexError):
        source[30]


def test_a_chunk_within_the_pool_is_a_view_not_a_copy():
    images, labels = make_pool()
    source = pool.tile(images, labels, 30, 4)
    assert np.shares_memory(source.batch(1, 5), source.pool)
    assert not np.shares_memory(source.batch(5, 9), source.pool)  # wraps: a copy


def test_matches_names_the_first_wrong_image():
    images, labels = make_pool()
    source = pool.tile(images, labels, 30)
    got = source.batch(10, 25).copy()
    assert source.matches(10, got) is None
    got[9, 0, 0, 0] ^= 1  # image 19
    got[12, 1, 1, 1] ^= 1
    assert source.matches(10, got) == 19
    assert source.matches(11, source.batch(10, 25)) is not None


def test_memory_is_the_pool_whatever_the_count():
    images, labels = make_pool()
    small = pool.tile(images, labels, 10)
    huge = pool.tile(images, labels, 10**6)
    assert huge.pool is small.pool or huge.pool.nbytes == small.pool.nbytes
    assert huge.nbytes == 10**6 * 48
    # Only the labels (one byte per image) are N-sized.
    assert huge.labels.nbytes == 10**6


def test_bad_pools_are_refused():
    images, labels = make_pool()
    with pytest.raises(ValueError, match="empty"):
        pool.tile(images[:0], labels[:0], 5)
    with pytest.raises(ValueError, match="7 images but 6 labels"):
        pool.tile(images, labels[:6], 5)
    with pytest.raises(ValueError, match="chunk_images"):
        pool.TiledImages(images, labels, 5, chunk_images=-1)


def test_load_reads_the_pool_into_memory(tmp_path):
    images, labels = make_pool()
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    source = pool.load(tmp_path / "images.npy", tmp_path / "labels.npy", 20, 6)
    assert not isinstance(source.pool, np.memmap)
    assert source.chunk_images == 6 and source.pool_size == 7
    assert np.array_equal(source[19], images[19 % 7])


@pytest.mark.parametrize(
    "pool_size, count, chunk", [(7, 30, 3), (7, 30, 7), (5, 23, 4), (6, 6, 10)]
)
def test_every_chunk_of_a_wrapping_pool_is_a_view_of_it(pool_size, count, chunk):
    """Chunks are cut at the pool's end: a timed store never pays for a copy."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(pool_size, 2, 2, 3), dtype=np.uint8)
    source = pool.tile(images, np.arange(pool_size, dtype=np.uint8), count, chunk)
    chunks = list(source.iter_chunks())
    assert all(np.shares_memory(piece, source.pool) for piece in chunks)
    assert all(1 <= len(piece) <= chunk for piece in chunks)
    assert np.array_equal(np.concatenate(chunks), source.take(np.arange(count)))
