"""plan: the experiment's axes expanded into jobs; job_resources: requests per job."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from imgbench.experiment import plan
from imgbench.jobs import job_resources

REPO = Path(__file__).resolve().parents[2]


def make_config(**changes) -> dict:
    config = {
        "n_images": 1000,
        "cutoffs": [1, 10, 100, 1000],
        "methods": ["png", "lmdb", "npy"],
        "variants": {"png": {"default": {}, "level1": {"compress_level": 1}}},
        "image_sizes": [32, 64],
        # 64x64 images are 12,288 bytes: a pool of 500 of them, chunks of 10.
        "pool_bytes": 12288 * 500,
        "chunk_bytes": 12288 * 10,
        # whole_array loads stores of up to 100 64x64 images.
        "max_array_bytes": 12288 * 100,
        "repeats": 2,
        "read_cache": ["cold", "warm"],
        "read_patterns": ["sequential", "random_single"],
        "readers": [1, 2],
        "readahead": ["on"],
        "random_reads": 1,
        "seed": 0,
    }
    config.update(changes)
    return config


def test_pool_and_chunk_sizes():
    config = make_config()
    assert plan.pool_bytes(config, 64) == 12288 * 500
    # CIFAR's training set is smaller than pool_bytes at 32x32.
    assert plan.pool_bytes(make_config(pool_bytes=10**12), 32) == 50_000 * 3072
    assert plan.chunk_images(config, 64) == 10
    assert plan.chunk_images(config, 32) == 40
    # At least one image, whatever the chunk size.
    assert plan.chunk_images(make_config(chunk_bytes=1), 64) == 1


def test_shipped_config_pool_matches_its_comment():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert plan.pool_bytes(config, 256) // plan.image_bytes(256) == 5086
    assert plan.pool_bytes(config, 32) // plan.image_bytes(32) == 50_000


def test_every_cutoff_runs_at_every_size():
    config = make_config(image_sizes=[32, 512], cutoffs=[10, 10**6], n_images=10**6)
    got = {(j["image_size"], j["cutoff"]) for j in plan.store_jobs(config)}
    assert got == {(32, 10), (32, 10**6), (512, 10), (512, 10**6)}


def test_method_variants():
    assert plan.method_variants(make_config()) == [
        ("png", "default"),
        ("png", "level1"),
        ("lmdb", "default"),
        ("npy", "default"),
    ]


def test_store_jobs_enumerate_every_combination():
    config = make_config()
    jobs = plan.store_jobs(config)
    keys = [(j["method"], j["variant"], j["image_size"], j["cutoff"], j["repeat"]) for j in jobs]
    expected = [
        (method, variant, size, cutoff, repeat)
        for method, variant in plan.method_variants(config)
        for size in (32, 64)
        for cutoff in config["cutoffs"]
        for repeat in (1, 2)
    ]
    assert sorted(keys) == sorted(expected)
    assert len(keys) == len(set(keys)) == 4 * (4 + 4) * 2
    assert all(set(job) == {"method", "variant", "image_size", "cutoff", "repeat"} for job in jobs)


def test_read_points_add_the_read_axes():
    config = make_config()
    stores = plan.store_jobs(config)
    reads = plan.read_points(config)
    assert len(reads) == len(stores) * 2 * 2 * 2
    assert {j["readahead"] for j in reads} == {"on"}
    axes = Counter((j["read_cache"], j["read_pattern"], j["readers"]) for j in reads)
    assert set(axes) == {
        (cache, pattern, readers)
        for cache in ("cold", "warm")
        for pattern in ("sequential", "random_single")
        for readers in (1, 2)
    }
    assert set(axes.values()) == {len(stores)}
    store_keys = {tuple(sorted(j.items())) for j in stores}
    for job in reads:
        read_axes = ("read_cache", "read_pattern", "readers", "readahead")
        base = {k: v for k, v in job.items() if k not in read_axes}
        assert tuple(sorted(base.items())) in store_keys


def kinds(config) -> list[tuple]:
    return [
        (k["read_cache"], k["read_pattern"], k["readers"], k["readahead"])
        for k in plan.read_kinds(config)
    ]


def test_read_kinds_whole_once_per_cache_in_one_process():
    config = make_config(
        read_patterns=["whole", "random_single"], readers=[1, 4], readahead=["on", "off"]
    )
    got = kinds(config)
    assert len(got) == len(set(got))
    whole = [kind for kind in got if kind[1] == "whole"]
    assert whole == [("cold", "whole", 1, "on"), ("warm", "whole", 1, "on")]
    # readahead off only for cold reads through the readers; on for every reader count
    assert {kind for kind in got if kind[3] == "off"} == {
        ("cold", "random_single", 1, "off"),
        ("cold", "random_single", 4, "off"),
    }
    assert {kind for kind in got if kind[1] != "whole" and kind[3] == "on"} == {
        (cache, "random_single", readers, "on") for cache in ("cold", "warm") for readers in (1, 4)
    }
    assert len(got) == 2 + 4 + 2


def test_read_kinds_warm_only_has_no_readahead_off():
    config = make_config(
        read_cache=["warm"], read_patterns=["whole", "shuffled"], readahead=["on", "off"]
    )
    assert kinds(config) == [
        ("warm", "whole", 1, "on"),
        ("warm", "shuffled", 1, "on"),
        ("warm", "shuffled", 2, "on"),
    ]


def test_read_points_are_every_store_times_every_kind():
    config = make_config(read_patterns=["whole", "sequential"], readahead=["on", "off"])
    reads = plan.read_points(config)
    assert len(reads) == len(plan.store_jobs(config)) * len(plan.read_kinds(config))
    keys = [tuple(sorted(job.items())) for job in reads]
    assert len(keys) == len(set(keys))


def test_one_read_job_per_store_runs_all_its_reads_warm_first():
    config = make_config(
        read_patterns=["whole", "random_single"], readahead=["on", "off"], random_reads=100
    )
    # every store with a read has one read job; its coordinates are the store's
    assert [job["cutoffs"] for job in plan.read_job_groups(config)] == [
        [job["cutoff"]] for job in plan.store_jobs(config)
    ]
    kinds_of = plan.StoreReadKinds(config)
    large = kinds_of(store_wildcards("png", "1000", "1"))
    assert sorted(map(str, large)) == sorted(map(str, plan.read_kinds(config, 1000, 32)))
    caches = [kind["read_cache"] for kind in large]
    assert caches == sorted(caches, key=lambda cache: cache != "warm")  # warm ones first
    assert caches[0] == "warm" and caches[-1] == "cold"
    assert [k["read_pattern"] for k in kinds_of(store_wildcards("png", "10", "1"))] == [
        "whole",
        "whole",
    ]
    # a store without any read has no read job: its store job removes it (unless kept)
    only_random = make_config(read_patterns=["random_single"], random_reads=100, keep_stores=False)
    readable = {
        (cutoff, job["repeat"])
        for job in plan.read_job_groups(only_random)
        for cutoff in job["cutoffs"]
    }
    assert {cutoff for cutoff, _ in readable} == {100, 1000}
    unread = plan.StoreUnread(only_random)
    assert unread(store_wildcards("png", "10", "1")) is True
    assert unread(store_wildcards("png", "100", "2")) is False
    assert (
        plan.StoreUnread({**only_random, "keep_stores": True})(store_wildcards("png", "10", "1"))
        is False
    )


def test_random_single_only_on_stores_of_at_least_random_reads_images():
    config = make_config(read_patterns=["whole", "random_single"], random_reads=100)
    patterns = {
        cutoff: {job["read_pattern"] for job in plan.read_points(config) if job["cutoff"] == cutoff}
        for cutoff in config["cutoffs"]
    }
    assert patterns == {
        1: {"whole"},
        10: {"whole"},
        100: {"whole", "random_single"},
        1000: {"whole", "random_single"},
    }
    notes = [n for n in plan.excluded_points(config) if "random_single" in n]
    assert len(notes) == 1 and "[1, 10]" in notes[0] and "random_reads (100)" in notes[0]
    # A store's read job runs exactly the reads that store has.
    kinds_of = plan.StoreReadKinds(config)
    small = kinds_of(store_wildcards("png", "10", "1"))
    large = kinds_of(store_wildcards("png", "1000", "1"))
    assert sorted((k["read_pattern"], k["read_cache"]) for k in small) == [
        ("whole", "cold"),
        ("whole", "warm"),
    ]
    assert len(large) == len(plan.read_kinds(config))
    assert ("random_single", "cold") in {(k["read_pattern"], k["read_cache"]) for k in large}


def test_a_read_parameter_reaches_only_the_read_jobs_that_use_it():
    config = make_config(
        read_patterns=["whole", "random_single"], random_reads=100, batch_size=8, seed=3
    )
    reads, batch = (
        plan.ReadParameter(config, "random_reads"),
        plan.ReadParameter(config, "batch_size"),
    )
    seed = plan.ReadParameter(config, "seed")
    small, large = store_wildcards("png", "10", "1"), store_wildcards("png", "1000", "1")
    # a store of 10 images has only whole reads: no parameter of random reads
    assert (reads(small), seed(small)) == (None, None)
    assert (reads(large), seed(large)) == (100, 3)
    assert batch(large) is None  # neither whole nor random_single reads in batches
    shuffled = make_config(read_patterns=["shuffled"], batch_size=8)
    assert plan.ReadParameter(shuffled, "batch_size")(small) == 8


def store_wildcards(method, cutoff, repeat, variant="default", size=32):
    # Snakemake hands wildcards over as strings.
    return SimpleNamespace(
        method=method,
        variant=variant,
        image_size=str(size),
        cutoff=str(cutoff),
        repeat=str(repeat),
    )


def test_store_priority_blocks_by_repeat():
    config = make_config(repeats=3)
    priority = plan.StorePriority(config)
    by_repeat = {
        repeat: [
            priority(
                store_wildcards(
                    job["method"], job["cutoff"], repeat, job["variant"], job["image_size"]
                )
            )
            for job in plan.store_jobs(config)
            if job["repeat"] == 1
        ]
        for repeat in (1, 2, 3)
    }
    for values in by_repeat.values():
        assert all(0 <= value < 1 for value in values)
        assert len(set(values)) == len(values)  # shuffled, no ties
    # Snakemake runs higher priorities first: every first store before any second one.
    assert min(by_repeat[1]) > max(by_repeat[2])
    assert min(by_repeat[2]) > max(by_repeat[3])
    # Shuffled within a block: not in the order of the methods or cutoffs.
    first = by_repeat[1]
    assert first != sorted(first) and first != sorted(first, reverse=True)


def test_store_priority_is_seeded():
    wildcards_list = [
        store_wildcards(method, cutoff, 1)
        for method in ("png", "lmdb", "npy")
        for cutoff in (1, 10, 100)
    ]
    same = plan.StorePriority(make_config(seed=5))
    again = plan.StorePriority(make_config(seed=5))
    other = plan.StorePriority(make_config(seed=6))
    values = [same(w) for w in wildcards_list]
    assert values == [again(w) for w in wildcards_list]
    assert values != [other(w) for w in wildcards_list]
    # One repeat: the whole range [0, 1) is one block.
    single = plan.StorePriority(make_config(repeats=1, seed=5))
    assert all(0 <= single(w) < 1 for w in wildcards_list)


def test_paths_fill_templates():
    jobs = plan.store_jobs(make_config(methods=["npy"], image_sizes=[32], cutoffs=[10], repeats=1))
    assert plan.paths("rows/{method}/{variant}/{image_size}px/{cutoff}/r{repeat}.csv", jobs) == [
        "rows/npy/default/32px/10/r1.csv"
    ]


def test_excluded_points_messages():
    assert plan.excluded_points(make_config()) == []
    config = make_config(read_patterns=["whole", "whole_array"], max_array_bytes=3072 * 1000)
    (note,) = plan.excluded_points(config)
    assert note.startswith("read_patterns whole_array: image_size 64: cutoffs [1000] skipped")
    assert f"max_array_bytes ({3072 * 1000:,} bytes)" in note
    assert (
        plan.excluded_points(make_config(read_patterns=["whole_array"], max_array_bytes=10**12))
        == []
    )


def test_whole_array_reads_only_stores_that_fit():
    config = make_config(read_patterns=["whole", "whole_array"], read_cache=["cold"])
    assert [k["read_pattern"] for k in plan.read_kinds(config, 100, 64)] == ["whole", "whole_array"]
    assert [k["read_pattern"] for k in plan.read_kinds(config, 101, 64)] == ["whole"]
    assert [k["read_pattern"] for k in plan.read_kinds(config, 400, 32)] == ["whole", "whole_array"]
    kinds_of = plan.StoreReadKinds(config)
    got = kinds_of(
        SimpleNamespace(method="npy", variant="default", image_size="64", cutoff="1000", repeat="1")
    )
    assert [(k["read_cache"], k["read_pattern"]) for k in got] == [("cold", "whole")]
    jobs = plan.read_points(config)
    assert not any(
        j["read_pattern"] == "whole_array" and j["image_size"] == 64 and j["cutoff"] == 1000
        for j in jobs
    )


def test_variant_options():
    options = plan.VariantOptions(make_config())
    assert options(SimpleNamespace(method="png", variant="level1")) == {"compress_level": 1}
    assert options(SimpleNamespace(method="png", variant="default")) == {}
    assert options(SimpleNamespace(method="lmdb", variant="default")) == {}
    # A copy: the rule may not change the configuration through it.
    got = options(SimpleNamespace(method="png", variant="level1"))
    got["compress_level"] = 9
    assert options(SimpleNamespace(method="png", variant="level1")) == {"compress_level": 1}


def test_pool_count_and_sizes():
    config = make_config()
    count = plan.PoolCount(config)
    assert count(SimpleNamespace(image_size="64")) == 500
    assert count(SimpleNamespace(image_size="32")) == 2000


def wildcards(cutoff, size=32, readers=1, pattern="whole"):
    """One read's wildcards (a store's and a read kind's)."""
    return SimpleNamespace(
        cutoff=str(cutoff), image_size=str(size), readers=str(readers), read_pattern=pattern
    )


def test_memory_follows_pool_and_chunks_not_the_cutoff():
    config = make_config()
    store, read = job_resources.StoreMemMb(config), job_resources.ReadMemMb(config).one
    pool_mb, chunk_mb = 12288 * 500 / 1e6, 12288 * 10 / 1e6
    assert store(wildcards(1000, 64)) == int(512 + round(pool_mb) + 3 * round(chunk_mb))
    for request in (store, read):
        assert request(wildcards(10**9, 64)) == request(wildcards(10, 64))
        assert request(wildcards(10, 64)) >= job_resources.BASE_MB
    # The article's read into one array holds the store twice (array and check).
    big = 10**6
    assert read(wildcards(big, 64, pattern="whole_array")) == read(wildcards(big, 64)) + 2 * round(
        big * 12288 / 1e6
    )


def test_a_buffered_shuffle_asks_memory_for_each_reader_s_buffer():
    config = make_config(shuffle_buffer=1000, batch_size=64)
    read = job_resources.ReadMemMb(config).one
    # the buffer and minibatches, and a unit: up to a WebDataset shard of 256 MiB, twice
    held_mb = round((1000 + 3 * 64) * 12288 / 1e6) + job_resources.UNIT_BOUND_MB
    assert job_resources.UNIT_BOUND_MB * 1e6 >= 2 * (256 << 20)
    for readers in (1, 3):
        assert (
            read(wildcards(10**4, 64, readers=readers, pattern="buffered_shuffle"))
            == read(wildcards(10**4, 64, readers=readers, pattern="shuffled")) + readers * held_mb
        )


def test_runtime_scales_with_images():
    small = job_resources.timing_runtime(wildcards(10))
    large = job_resources.timing_runtime(wildcards(100000))
    huge = job_resources.timing_runtime(wildcards(100000, size=256))
    assert small >= 10
    assert small < large < huge
    assert huge == 10 + int(100000 * 196608 / 1e6 / 200)


def test_a_read_job_asks_for_its_largest_read():
    config = make_config(
        read_patterns=["whole", "whole_array", "buffered_shuffle"],
        readers=[1, 3],
        shuffle_buffer=1000,
        batch_size=64,
    )
    job = store_wildcards("npy", "100", "1", size=64)
    read = job_resources.ReadMemMb(config)
    each = [
        read.one(SimpleNamespace(**vars(job), **kind)) for kind in plan.read_kinds(config, 100, 64)
    ]
    assert read(job) == max(each) > min(each)
    # the buffered shuffle of 3 readers is the largest
    assert read(job) == read.one(wildcards(100, 64, readers=3, pattern="buffered_shuffle"))


@pytest.mark.parametrize("readers", [[1], [1, 2], [8, 2]])
def test_read_threads_are_the_most_readers_of_a_store_s_reads(readers):
    config = make_config(readers=readers)
    assert job_resources.ReadThreads(config)(store_wildcards("npy", "10", "1")) == max(readers)


def test_read_runtime_allows_for_each_read():
    config = make_config(
        read_patterns=["whole", "sequential"], readers=[1], readahead=["on", "off"]
    )
    job = store_wildcards("npy", str(10**6), "1", size=64)
    reads = len(plan.read_kinds(config, 10**6, 64))
    assert reads == 2 + 3
    extra = job_resources.timing_runtime(job) - 10
    assert extra > 0
    assert job_resources.ReadRuntime(config)(job) == 10 + reads * extra


def test_small_stores_share_their_jobs_by_reads():
    """Stores of at most small_store_bytes of pixels share a job with the other small
    ones of the same reads; larger ones, and any at 0, have their own."""
    config = make_config(
        cutoffs=[1, 10, 100, 1000, 10000],
        read_patterns=["whole", "random_single"],
        random_reads=50,
        small_store_bytes=1000 * 3072,  # up to 1,000 images at 32x32, 250 at 64x64
    )
    # 1 and 10 have no random read (fewer images than random_reads), 100 and 1000 do
    assert plan.cutoff_groups(config, 32) == [[1, 10], [100, 1000], [10000]]
    assert plan.cutoff_groups(config, 64) == [[1, 10], [100], [1000], [10000]]
    assert plan.cutoff_groups({**config, "small_store_bytes": 0}, 32) == [
        [1],
        [10],
        [100],
        [1000],
        [10000],
    ]
    assert plan.cutoff_label([1, 10]) == "1+10" and plan.cutoffs_of("1+10") == [1, 10]
    assert plan.cutoffs_of("1000") == [1000] and plan.cutoffs_of(1000) == [1000]
    jobs = plan.job_groups(config)
    # every store is in exactly one job
    stores = Counter(
        (job["method"], job["variant"], job["image_size"], cutoff, job["repeat"])
        for job in jobs
        for cutoff in job["cutoffs"]
    )
    assert set(stores.values()) == {1}
    assert sorted(stores) == sorted(
        (job["method"], job["variant"], job["image_size"], job["cutoff"], job["repeat"])
        for job in plan.store_jobs(config)
    )
    labels = {job["cutoff"] for job in jobs if job["image_size"] == 32}
    assert labels == {"1+10", "100+1000", "10000"}
    # the reads of a job's stores, and what they may ask for
    kinds = plan.StoreReadKinds(config)(store_wildcards("png", "100+1000", "1"))
    assert {kind["read_pattern"] for kind in kinds} == {"whole", "random_single"}
    assert plan.read_job_groups(config) == jobs
    # store directories, one per cutoff
    template = "stores/{method}/{variant}/{image_size}px/{cutoff}/repeat{repeat}"
    assert plan.StorePaths(template)(store_wildcards("npy", "1+10", "2")) == [
        "stores/npy/default/32px/1/repeat2",
        "stores/npy/default/32px/10/repeat2",
    ]


def test_a_job_of_small_stores_asks_for_the_largest_and_all_of_them():
    config = make_config(read_patterns=["whole", "whole_array"], small_store_bytes=10**9)
    shared = store_wildcards("npy", "10+100", "1", size=64)
    alone = store_wildcards("npy", "100", "1", size=64)
    assert job_resources.ReadMemMb(config)(shared) == job_resources.ReadMemMb(config)(alone)
    assert job_resources.timing_runtime(shared) >= job_resources.timing_runtime(alone)


def test_the_disk_need_of_a_job_is_its_stores_together():
    from imgbench.harness import space

    config = make_config(methods=["npy"], variants={}, cutoffs=[10, 1000, 100000])
    options = lambda job: {}  # noqa: E731
    alone = space.largest_store(plan.job_groups({**config, "small_store_bytes": 0}), options)
    shared = space.largest_store(plan.job_groups({**config, "small_store_bytes": 10**10}), options)
    assert alone[0] == "npy/default 64px 100,000-image"
    assert shared[0] == "npy/default 64px 10-, 1,000- and 100,000-image stores of one job"
    each = [space.store_bytes("npy", cutoff, plan.image_bytes(64), {}) for cutoff in (10, 1000)]
    assert shared[1] == alone[1] + sum(each)
