"""The reader pool measures what a device can give: wall time with no check inside it,
readers warmed up before their clock, fresh arrays only, warm only when cached."""

from __future__ import annotations

import fcntl
import mmap
import os
import time
from pathlib import Path

import numpy as np
import pytest

from imgbench.experiment import vocabulary
from imgbench.harness import (
    access,
    freshness,
    measure,
    provenance,
    readers,
    timed_reads,
    verification,
)
from imgbench.harness.job_rows import cache_label
from imgbench.harness.point import Point
from imgbench.harness.source import as_source
from imgbench.methods import get_method

COUNT = 40
REQUEST_S = 0.01


@pytest.fixture(scope="module")
def npy_store(tmp_path_factory):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(COUNT, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=COUNT, dtype=np.uint8)
    store = tmp_path_factory.mktemp("readers") / "npy"
    store.mkdir()
    get_method("npy").store(store, images, labels, options={})
    return store, images, labels


def device_reader(monkeypatch, lock_path=None):
    """The npy reader behind a fake device: each request sleeps REQUEST_S, holding a
    machine-wide lock when ``lock_path`` is given (a device that serves one request at a
    time)."""
    module = get_method("npy")
    real_open = module.open_reader

    class Device:
        def __init__(self, reader):
            self.reader = reader

        def get(self, indices):
            if lock_path is None:
                time.sleep(REQUEST_S)
                return self.reader.get(indices)
            with open(lock_path, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    time.sleep(REQUEST_S)
                    return self.reader.get(indices)
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

        def close(self):
            self.reader.close()

    monkeypatch.setattr(module, "open_reader", lambda path, **kw: Device(real_open(path, **kw)))


def slow_checks(monkeypatch, seconds=REQUEST_S):
    """The harness's real checks, each made as costly as a request (the old per-reader
    clocks left them out and gave a serial device a 1.87x speed-up)."""
    real_verify = verification.verify

    def verify(*args, **kwargs):
        time.sleep(seconds)
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(verification, "verify", verify)


def read_seconds(store, images, labels, count: int) -> float:
    requests = access.random_single(COUNT, COUNT, seed=0)  # 40 requests of one image
    best = float("inf")
    for _ in range(2):
        _, region = timed_reads.read_in_workers(
            "npy", store, access.split(requests, count), images, labels, readahead=True
        )
        best = min(best, region.elapsed_ns / 1e9)
    return best


def test_a_serial_device_gives_two_readers_no_speed_up(npy_store, monkeypatch, tmp_path):
    store, images, labels = npy_store
    device_reader(monkeypatch, lock_path=tmp_path / "device.lock")
    slow_checks(monkeypatch)
    one, two = (read_seconds(store, images, labels, n) for n in (1, 2))
    assert one >= COUNT * REQUEST_S and two >= COUNT * REQUEST_S  # no time is left out
    assert two >= 0.9 * one, (one, two)


def test_a_parallel_device_gives_two_readers_a_speed_up(npy_store, monkeypatch):
    store, images, labels = npy_store
    device_reader(monkeypatch)
    slow_checks(monkeypatch)
    one, two = (read_seconds(store, images, labels, n) for n in (1, 2))
    assert one / two > 1.6, (one, two)


def test_a_reader_pays_first_use_costs_in_its_warm_up_not_in_its_clock(
    npy_store, monkeypatch, tmp_path
):
    """A library whose first request in a process costs 0.2 s (its set-up after fork):
    after the readers' warm-up on the scratch store, the first timed request costs what
    the second does."""
    store, images, labels = npy_store
    module = get_method("npy")
    real_open = module.open_reader
    first_use = {"pid": os.getpid()}  # the parent has used it (its own warm-up)

    class FirstUseCost:
        def __init__(self, reader):
            self.reader = reader

        def get(self, indices):
            if first_use["pid"] != os.getpid():
                time.sleep(0.2)
                first_use["pid"] = os.getpid()
            return self.reader.get(indices)

        def close(self):
            self.reader.close()

    monkeypatch.setattr(module, "open_reader", lambda p, **kw: FirstUseCost(real_open(p, **kw)))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    module.store(scratch, images[:1], labels[:1], options={})
    requests = access.split(access.random_single(COUNT, 4, seed=0), 2)
    latencies, _ = timed_reads.read_in_workers(
        "npy", store, requests, images, labels, readahead=True, scratch=scratch
    )
    assert latencies.max() < 0.1e9, latencies
    without, _ = timed_reads.read_in_workers("npy", store, requests, images, labels, readahead=True)
    assert without.max() >= 0.2e9  # the test sees the cost when nobody warms up


def test_read_rows_say_the_open_is_in_the_clock(npy_store, tmp_path):
    store, images, labels = npy_store
    env = provenance.collect(tmp_path, Path(__file__).resolve().parents[2])
    for pattern in ("whole", "shuffled"):
        point = Point("npy", cache="warm", pattern=pattern, batch_size=8)
        (row,) = measure.run_read(point, (images, labels), store, env=env)
        assert row["open_in_clock"] is True


# --- fresh arrays ----------------------------------------------------------------------------


def test_freshness_tells_views_of_memory_maps_from_fresh_arrays(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(4096, dtype=np.uint8))
    mapped = np.load(path, mmap_mode="r")
    assert freshness.problem(mapped[10:20]) is not None
    assert freshness.problem(np.array(mapped[10:20])) is None
    assert freshness.problem(mapped[[1, 2, 3]]) is None  # fancy indexing copies
    with open(path, "rb") as handle:
        raw = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        view = np.frombuffer(raw, dtype=np.uint8, offset=128)
        assert "memory map" in freshness.problem(view)
        through = np.frombuffer(memoryview(raw)[128:], dtype=np.uint8)
        assert freshness.problem(through) is not None
        del view, through
        raw.close()
    assert freshness.problem(np.frombuffer(b"\x00" * 64, dtype=np.uint8)) is None
    assert freshness.problem(np.zeros((4, 4))[1:, 2:]) is None


def test_a_method_returning_views_of_a_memory_map_fails_in_one_sentence(npy_store, monkeypatch):
    """A read_batches of memory-mapped views passed every check; the cold read "took"
    0.0014 s where reading took 0.1 s."""
    store, images, labels = npy_store
    module = get_method("npy")

    def lazy_batches(store_dir, batch_images):
        mapped = np.load(store_dir / "images.npy", mmap_mode="r")
        stored_labels = np.load(store_dir / "labels.npy")
        for start in range(0, len(mapped), batch_images):
            yield mapped[start : start + batch_images], stored_labels[start : start + batch_images]

    monkeypatch.setattr(module, "read_batches", lazy_batches)
    with pytest.raises(measure.VerificationError, match="a batch must be a fresh array"):
        measure.run_read(Point("npy", cache="cold"), (images, labels), store, env={})


def test_a_reader_returning_views_of_a_memory_map_fails(npy_store, monkeypatch):
    store, images, labels = npy_store
    module = get_method("npy")

    class Lazy:
        def __init__(self, store_dir, **kwargs):
            self.mapped = np.load(store_dir / "images.npy", mmap_mode="r")
            self.labels = np.load(store_dir / "labels.npy")

        def get(self, indices):
            first = int(indices[0])
            return self.mapped[first : first + 1], self.labels[first : first + 1]

        def close(self):
            pass

    monkeypatch.setattr(module, "open_reader", Lazy)
    requests = access.split(access.random_single(COUNT, 4, seed=0), 2)
    with pytest.raises(measure.VerificationError, match="npy method returned a view"):
        timed_reads.read_in_workers("npy", store, requests, images, labels, readahead=True)


@pytest.mark.parametrize("cores", [1, 2, 4])
def test_the_check_pass_is_split_over_the_free_cores(npy_store, monkeypatch, tmp_path, cores):
    """Every request is checked exactly once, by its reader and, where cores are left
    free, by checker processes forked for the untimed pass; a wrong image in a checker's
    part fails the read as one in the reader's would."""
    store, images, labels = npy_store
    monkeypatch.setattr(readers.os, "cpu_count", lambda: cores)
    log = tmp_path / "checked.txt"
    real = verification.request_check

    def logging_check(*args, **kwargs):
        check = real(*args, **kwargs)

        def logged(batch, request):
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()} {int(request[0])}\n")
            return check(batch, request)

        return logged

    monkeypatch.setattr(verification, "request_check", logging_check)
    requests = access.random_single(COUNT, COUNT, seed=0)
    timed_reads.read_in_workers("npy", store, [requests], images, labels, readahead=True)
    lines = [line.split() for line in log.read_text().splitlines()]  # no warm-up: no scratch
    checked = sorted(int(index) for _, index in lines)
    assert checked == sorted(int(request[0]) for request in requests)
    assert len({pid for pid, _ in lines}) == min(cores, 4)
    assert readers.check_parts([requests]) == min(cores, 4)
    assert readers.check_parts([requests, requests]) == max(1, min(cores, 4) // 2)

    # a wrong image that only the last part checks
    wrong = images.copy()
    last = int(requests[-1][0])
    wrong[last] ^= 1
    with pytest.raises(measure.VerificationError, match="npy"):
        timed_reads.read_in_workers("npy", store, [requests], wrong, labels, readahead=True)


# --- cache labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cache, cached, label",
    [
        ("warm", 1.0, "warm"),
        ("warm", 0.995, "warm"),
        ("warm", 0.55, vocabulary.PARTLY_CACHED),
        ("warm", float("nan"), "warm"),  # not measurable here: the read is as asked
        ("cold", 0.0, "cold"),
    ],
)
def test_a_warm_read_of_a_store_not_wholly_cached_is_not_called_warm(cache, cached, label):
    assert cache_label(cache, cached) == label


def test_readers_end_when_waiting_for_a_release_that_never_comes(monkeypatch):
    """A reader waiting for its release returns on its own once its parent is gone."""
    monkeypatch.setattr(readers, "PARENT_CHECK_S", 0.01)

    class Never:
        def wait(self, seconds):
            time.sleep(seconds)
            return False

    monkeypatch.setattr(readers.lifetime, "parent_alive", lambda pid: False)
    exits = []
    monkeypatch.setattr(readers.os, "_exit", lambda code: exits.append(code) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        readers._wait_for(Never(), os.getppid())
    assert exits == [1]


def test_the_checks_refuse_a_buffered_shuffle_that_loses_or_repeats_an_image(
    npy_store, monkeypatch
):
    """The checking pass of a buffered shuffle checks each minibatch against the indices
    it holds, and that together they hold every image of the share exactly once."""
    store, images, labels = npy_store
    module = get_method("npy")
    check = verification.request_check("npy", as_source(images, labels))
    epoch = access.buffered_shuffle(COUNT, 8, 5, seed=1)
    readers.checked_requests(module, store, epoch, True, check)  # every image, once
    real_serve = access.BufferedShuffle.serve

    def served_with(change):
        def serve(self, reader, latencies=None):
            yield from change(list(real_serve(self, reader, latencies)))

        return serve

    monkeypatch.setattr(access.BufferedShuffle, "serve", served_with(lambda b: b[:-1]))
    with pytest.raises(verification.VerificationError, match=r"held 32 images .*the reads 40"):
        readers.checked_requests(module, store, epoch, True, check)
    monkeypatch.setattr(access.BufferedShuffle, "serve", served_with(lambda b: b + b[:1]))
    with pytest.raises(verification.VerificationError, match=r"held 48 images \(8 of them more"):
        readers.checked_requests(module, store, epoch, True, check)
    # every image once, but a minibatch's images are not those its indices name
    swapped = served_with(lambda b: [(batch, indices[::-1]) for batch, indices in b])
    monkeypatch.setattr(access.BufferedShuffle, "serve", swapped)
    with pytest.raises(verification.VerificationError, match=r"image \d+ differs from the source"):
        readers.checked_requests(module, store, epoch, True, check)


def test_a_buffered_shuffle_is_timed_per_unit_read_and_checked_in_the_pool(npy_store):
    store, images, labels = npy_store
    epoch = access.buffered_shuffle(COUNT, 8, 5, seed=2)
    latencies, region = timed_reads.read_in_workers(
        "npy", store, access.split(epoch, 2), images, labels, readahead=True
    )
    assert len(latencies) == len(epoch) == 5  # one latency per unit read
    assert (latencies > 0).all() and region.elapsed_ns > 0
