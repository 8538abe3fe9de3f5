"""access: read orders, minibatches, random single reads, sharing among readers."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

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


PARAMETERS = {"batch_size": 8, "reads": 3, "seed": 2, "shuffle_buffer": 4}


def test_requests_dispatch():
    np.testing.assert_array_equal(
        flat(access.requests("shuffled", 50, **PARAMETERS)), flat(access.shuffled(50, 8, 2))
    )
    assert len(access.requests("random_single", 50, **PARAMETERS)) == 3
    assert len(access.requests("sequential", 50, **PARAMETERS)) == 7
    buffered = access.requests("buffered_shuffle", 50, **PARAMETERS)
    assert buffered == access.buffered_shuffle(50, 8, 4, 2)
    assert len(buffered) == 7  # one read per unit: blocks of batch_size by default
    with pytest.raises(ValueError, match="read pattern 'zigzag' has no requests"):
        access.requests("zigzag", 50, **PARAMETERS)
    # The whole-store read is the method's own read, not a list of requests.
    with pytest.raises(ValueError, match="read pattern 'whole' has no requests"):
        access.requests("whole", 50, **PARAMETERS)
    assert access.ONE_PROCESS_PATTERNS == ("whole", "whole_array")
    assert access.PATTERNS == access.ONE_PROCESS_PATTERNS + access.REQUEST_PATTERNS
    assert access.REQUEST_PATTERNS == (
        "sequential",
        "shuffled",
        "buffered_shuffle",
        "random_single",
    )


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


# --- buffered_shuffle ---------------------------------------------------------------------


class UnitReader:
    """A reader of a store of ``count`` images whose pixels hold their index (labels: the
    index mod 7); it records every ``get``."""

    def __init__(self, count: int):
        self.images = np.repeat(np.arange(count), 6).reshape(count, 1, 2, 3)
        self.labels = (np.arange(count) % 7).astype(np.uint8)
        self.gets: list[np.ndarray] = []

    def get(self, indices):
        self.gets.append(np.array(indices))
        return self.images[indices], self.labels[indices]


def served(share: access.BufferedShuffle, count: int):
    """The minibatches ``share`` draws through a ``UnitReader``, and the reader."""
    reader = UnitReader(count)
    return list(share.serve(reader)), reader


def drawn_order(batches) -> np.ndarray:
    return np.concatenate([indices for _, indices in batches])


def test_default_units_are_blocks_of_the_batch_size():
    assert access.default_units(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert access.default_units(8, 4) == [(0, 4), (4, 8)]
    assert access.default_units(0, 4) == []
    plain = types.ModuleType("imgbench.methods.plain")  # no read_units: the default
    assert access.read_units(plain, Path("unused"), 10, 4) == [(0, 4), (4, 8), (8, 10)]
    plain.read_units = lambda store_dir: None  # none of its own for this store: the default
    assert access.read_units(plain, Path("unused"), 10, 4) == [(0, 4), (4, 8), (8, 10)]


def sharded(units):
    """A method module whose ``read_units`` gives ``units`` (and records its store)."""
    module = types.ModuleType("imgbench.methods.sharded")
    module.asked = []

    def read_units(store_dir):
        module.asked.append(store_dir)
        return units

    module.read_units = read_units
    return module


def test_a_method_s_read_units_are_its_units():
    module = sharded([(0, 3), (3, 10), (10, 11)])
    assert access.read_units(module, Path("store"), 11, 4) == [(0, 3), (3, 10), (10, 11)]
    assert module.asked == [Path("store")]
    units = access.read_units(module, Path("store"), 11, 4)
    epoch = access.requests(
        "buffered_shuffle", 11, batch_size=4, reads=1, seed=0, shuffle_buffer=2, units=units
    )
    assert sorted(epoch.units) == [(0, 3), (3, 10), (10, 11)]
    batches, reader = served(epoch, 11)
    assert [(g[0], g[-1] + 1) for g in reader.gets] == list(epoch.units)
    assert sorted(drawn_order(batches).tolist()) == list(range(11))


@pytest.mark.parametrize(
    "units",
    [
        [(0, 3), (4, 11)],  # a gap
        [(0, 5), (3, 11)],  # an overlap
        [(0, 3), (3, 3), (3, 11)],  # an empty unit
        [(0, 3), (3, 10)],  # short of the store
        [(3, 11), (0, 3)],  # out of order
    ],
)
def test_read_units_that_do_not_cover_the_store_once_are_refused(units):
    with pytest.raises(ValueError, match=r"method sharded's read_units gave .* 11 images"):
        access.read_units(sharded(units), Path("store"), 11, 4)


def test_units_are_in_a_seeded_permutation_each_once():
    units = access.default_units(100, 8)
    first = access.buffered_shuffle(100, 8, 10, seed=3)
    assert first == access.buffered_shuffle(100, 8, 10, seed=3)
    assert first.units != access.buffered_shuffle(100, 8, 10, seed=4).units
    assert sorted(first.units) == units and first.units != tuple(units)
    assert [r.tolist() for r in first] == [list(range(a, b)) for a, b in first.units]
    assert sum(len(r) for r in first) == 100  # the images read: every one once


def test_each_unit_is_read_with_one_get_of_its_indices_in_order():
    epoch = access.buffered_shuffle(50, 8, 10, seed=1)
    latencies = np.full(len(epoch), -1, dtype=np.int64)
    reader = UnitReader(50)
    list(epoch.serve(reader, latencies))
    assert [g.tolist() for g in reader.gets] == [list(range(a, b)) for a, b in epoch.units]
    assert (latencies >= 0).all()  # one latency per unit read


@pytest.mark.parametrize(("count", "batch", "buffer"), [(100, 8, 10), (37, 5, 64), (64, 64, 1)])
def test_minibatches_hold_every_image_once_and_are_full_but_the_last(count, batch, buffer):
    batches, _ = served(access.buffered_shuffle(count, batch, buffer, seed=5), count)
    sizes = [len(indices) for _, indices in batches]
    assert all(size == batch for size in sizes[:-1]) and 0 < sizes[-1] <= batch
    assert sorted(drawn_order(batches).tolist()) == list(range(count))
    for (images, labels), indices in batches:  # each image is the one its index names
        assert (images[:, 0, 0, 0] == indices).all() and (labels == indices % 7).all()


def test_minibatches_are_fresh_arrays():
    batches, _ = served(access.buffered_shuffle(40, 4, 6, seed=2), 40)
    arrays = [array for (images, labels), _ in batches for array in (images, labels)]
    assert all(array.flags.owndata for array in arrays)
    for i, one in enumerate(arrays):
        assert not any(np.shares_memory(one, other) for other in arrays[i + 1 :])


def test_the_buffer_shuffles_across_units():
    epoch = access.buffered_shuffle(200, 8, 50, seed=9)
    order = drawn_order(served(epoch, 200)[0])
    units_order = flat(list(epoch))
    assert not np.array_equal(order, units_order)
    # images of one unit leave the buffer among those of others: the first minibatch
    # mixes several units
    first = order[:8]
    assert len({index // 8 for index in first.tolist()}) > 1


@pytest.mark.parametrize(("batch", "units_read"), [(1, 6), (5, 7)])
def test_draws_begin_once_the_buffer_holds_shuffle_buffer_images(batch, units_read):
    """Units of 5 through a buffer of 30: the first image is drawn after the 30th pushed
    (the 6th unit), a minibatch of 5 is complete after 4 more (the 7th)."""
    units = access.default_units(100, 5)
    epoch = access.buffered_shuffle(100, batch, 30, seed=0, units=units)
    reader = UnitReader(100)
    next(epoch.serve(reader))
    assert len(reader.gets) == units_read


def test_a_buffer_of_one_keeps_the_units_order():
    epoch = access.buffered_shuffle(50, 8, 1, seed=4)
    batches, _ = served(epoch, 50)
    np.testing.assert_array_equal(drawn_order(batches), flat(list(epoch)))
    assert [len(indices) for _, indices in batches] == [8] * 6 + [2]


def test_the_same_seed_and_reader_draw_the_same_minibatches():
    epoch = access.buffered_shuffle(120, 8, 20, seed=6)
    first, again = drawn_order(served(epoch, 120)[0]), drawn_order(served(epoch, 120)[0])
    np.testing.assert_array_equal(first, again)
    other_reader = dataclasses.replace(epoch, reader=1)
    assert not np.array_equal(first, drawn_order(served(other_reader, 120)[0]))
    other_seed = dataclasses.replace(epoch, seed=7)  # the same units, another buffer stream
    assert not np.array_equal(first, drawn_order(served(other_seed, 120)[0]))


@pytest.mark.parametrize("workers", [1, 2, 3, 20])
def test_readers_share_the_units_contiguously(workers):
    epoch = access.buffered_shuffle(100, 8, 10, seed=3)
    shares = access.split(epoch, workers)
    assert [share.reader for share in shares] == list(range(workers))
    assert [unit for share in shares for unit in share.units] == list(epoch.units)
    assert {(s.batch_size, s.shuffle_buffer, s.seed) for s in shares} == {(8, 10, 3)}
    drawn = [drawn_order(served(share, 100)[0]) for share in shares if len(share)]
    assert sorted(np.concatenate(drawn).tolist()) == list(range(100))


def webdataset_pick(held: list, pushed, picks) -> list:
    """The reference: webdataset's per-sample pick (swap with the last, pop) after each
    push into a full buffer."""
    drawn = []
    for item, pick in zip(pushed, picks, strict=True):
        held.append(item)
        held[pick], held[-1] = held[-1], held[pick]
        drawn.append(held.pop())
    return drawn


def test_vectorised_draws_are_webdataset_s_per_sample_picks():
    rng = np.random.default_rng(0)
    for _ in range(300):
        size, count = int(rng.integers(1, 12)), int(rng.integers(0, 40))
        held = rng.permutation(100)[: size - 1]
        pushed = np.arange(100, 100 + count)
        picks = rng.integers(0, size, size=count)
        reference = list(held)
        expected = webdataset_pick(reference, pushed, picks)
        mine = held.copy()
        assert access._draws(mine, pushed, picks).tolist() == expected
        assert mine.tolist() == reference


def test_a_reader_holds_its_buffer_a_unit_and_a_minibatch():
    epoch = access.buffered_shuffle(100, 8, 30, seed=0)
    assert access.buffer_capacity(30, 8, 8) == 29 + 8 + 7
    assert epoch.images_held == 29 + 8 + 7 + 8 + 8
    units = access.read_units(sharded([(0, 90), (90, 100)]), Path("s"), 100, 8)
    big = access.buffered_shuffle(100, 8, 30, seed=0, units=units)
    assert big.images_held == 29 + 90 + 7 + 90 + 8
    batches, _ = served(big, 100)  # the storage holds a unit of 90 beside the buffer
    assert sorted(drawn_order(batches).tolist()) == list(range(100))
