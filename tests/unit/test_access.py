"""access: read orders, minibatches, random single reads, sharing among readers."""

from __future__ import annotations

import numpy as np
import pytest

from imgbench.harness import access
from imgbench.methods import npy


def flat(requests) -> np.ndarray:
    return np.concatenate(requests) if requests else np.empty(0, dtype=int)


@pytest.mark.parametrize("count", [1, 7, 64, 1000])
def test_shuffled_covers_every_index_once(count):
    order = flat(access.shuffled(count, batch_size=16, seed=3))
    assert len(order) == count
    assert sorted(order.tolist()) == list(range(count))


def test_shuffled_is_deterministic_per_seed():
    first = flat(access.shuffled(500, 32, seed=11))
    again = flat(access.shuffled(500, 32, seed=11))
    other = flat(access.shuffled(500, 32, seed=12))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # A permutation, not the identity.
    assert not np.array_equal(first, np.arange(500))


def test_shuffled_order_does_not_depend_on_batch_size():
    np.testing.assert_array_equal(
        flat(access.shuffled(100, 7, seed=5)), flat(access.shuffled(100, 64, seed=5))
    )


@pytest.mark.parametrize(
    ("count", "batch", "sizes"),
    [(10, 4, [4, 4, 2]), (8, 4, [4, 4]), (3, 64, [3]), (1, 1, [1]), (0, 4, [])],
)
def test_minibatches_with_short_last_batch(count, batch, sizes):
    for requests in (
        access.sequential(count, batch),
        access.shuffled(count, batch, seed=0),
    ):
        assert [len(r) for r in requests] == sizes


def test_sequential_is_front_to_back():
    requests = access.sequential(10, 4)
    assert [r.tolist() for r in requests] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_random_single_in_range_and_seeded():
    requests = access.random_single(13, reads=500, seed=4)
    assert len(requests) == 500
    assert all(len(r) == 1 for r in requests)
    positions = flat(requests)
    assert positions.min() >= 0 and positions.max() < 13
    # With replacement over 13 images, 500 reads hit every one of them.
    assert set(positions.tolist()) == set(range(13))
    np.testing.assert_array_equal(positions, flat(access.random_single(13, 500, seed=4)))
    assert not np.array_equal(positions, flat(access.random_single(13, 500, seed=5)))


def test_requests_dispatch():
    np.testing.assert_array_equal(
        flat(access.requests("shuffled", 50, batch_size=8, reads=3, seed=2)),
        flat(access.shuffled(50, 8, 2)),
    )
    assert len(access.requests("random_single", 50, batch_size=8, reads=3, seed=2)) == 3
    assert len(access.requests("sequential", 50, batch_size=8, reads=3, seed=2)) == 7
    with pytest.raises(ValueError, match="read pattern 'zigzag' has no requests"):
        access.requests("zigzag", 50, batch_size=8, reads=3, seed=2)
    # The whole-store read is the method's own read, not a list of requests.
    with pytest.raises(ValueError, match="read pattern 'whole' has no requests"):
        access.requests("whole", 50, batch_size=8, reads=3, seed=2)
    assert access.ONE_PROCESS_PATTERNS == ("whole", "whole_array")
    assert access.PATTERNS == access.ONE_PROCESS_PATTERNS + access.REQUEST_PATTERNS
    assert access.REQUEST_PATTERNS == ("sequential", "shuffled", "random_single")


def test_gathering_returns_requested_images_in_order(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 4, 4, 3), dtype=np.uint8)
    labels = np.arange(30, dtype=np.uint8)
    npy.store(tmp_path, images, labels, options={})
    reader = npy.open_reader(tmp_path)
    try:
        for request in access.shuffled(30, 8, seed=9):
            got_images, got_labels = reader.get(request)
            np.testing.assert_array_equal(got_images, images[request])
            np.testing.assert_array_equal(got_labels, request)
        got_images, got_labels = reader.get(np.array([5, 2, 5, 0]))
        np.testing.assert_array_equal(got_labels, [5, 2, 5, 0])
        np.testing.assert_array_equal(got_images[0], got_images[2])
    finally:
        reader.close()


@pytest.mark.parametrize("count", [0, 1, 5, 17, 100])
@pytest.mark.parametrize("workers", [1, 2, 3, 8, 150])
def test_split_no_overlap_no_loss(count, workers):
    items = list(range(count))
    shares = access.split(items, workers)
    assert len(shares) == workers
    joined = [item for share in shares for item in share]
    assert joined == items  # contiguous, in order, nothing lost or doubled
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= 1


def test_split_of_requests_keeps_arrays():
    requests = access.shuffled(20, 3, seed=1)
    shares = access.split(requests, 3)
    np.testing.assert_array_equal(flat([r for share in shares for r in share]), flat(requests))
    with pytest.raises(ValueError, match="at least 1"):
        access.split(requests, 0)


def test_latency_percentiles():
    latencies_ns = np.arange(1, 101) * 1000  # 1..100 us
    stats = access.latency_percentiles(latencies_ns)
    assert stats["latency_p50_us"] == pytest.approx(np.percentile(np.arange(1, 101), 50))
    assert stats["latency_p95_us"] == pytest.approx(np.percentile(np.arange(1, 101), 95))
    assert stats["latency_p99_us"] == pytest.approx(np.percentile(np.arange(1, 101), 99))
    assert stats["latency_max_us"] == 100.0
    empty = access.latency_percentiles(np.empty(0))
    assert set(empty) == set(stats) and all(np.isnan(v) for v in empty.values())
