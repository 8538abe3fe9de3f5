"""Many clients reading one store (the harness): shares as a distributed sampler splits
them, client processes released together, every share read and checked, faults named,
refusals in one sentence, and nothing left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from processes import descendants, identity, running

from imgbench.experiment import plan, vocabulary
from imgbench.harness import access, clients, measure
from imgbench.harness.client import ClientTask, check_visible
from imgbench.harness.point import Point, Settings
from imgbench.jobs import job_resources

COUNT = 300
ENV = {"host": "test", "store_fs_type": "test"}


@pytest.fixture(scope="module")
def pool_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("clients")
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(COUNT, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=COUNT, dtype=np.int64)
    np.save(root / "images.npy", images)
    np.save(root / "labels.npy", labels)
    return root / "images.npy", root / "labels.npy"


def written_store(pool_files, tmp_path, method="npy"):
    source = measure.load_source(*pool_files, COUNT, 64)
    store = tmp_path / "stores" / method
    measure.run_store(Point(method), source, store, env=ENV, settings=Settings(1, 0))
    return source, store


# --- shares ------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [vocabulary.SEQUENTIAL, vocabulary.SHUFFLED])
@pytest.mark.parametrize("count_clients", [1, 3, 4])
def test_shares_read_every_image_once_strided_like_a_distributed_sampler(pattern, count_clients):
    requests = access.requests(
        pattern, 101, batch_size=8, reads=50, seed=1, shuffle_buffer=10, units=None
    )
    order = np.concatenate(requests)
    shares = access.client_shares(pattern, requests, count_clients, 8)
    assert len(shares) == count_clients
    for rank, share in enumerate(shares):
        mine = np.concatenate(share)
        assert np.array_equal(mine, order[rank::count_clients])  # DistributedSampler's
        assert all(len(batch) <= 8 for batch in share)
    sizes = [sum(len(batch) for batch in share) for share in shares]
    assert max(sizes) - min(sizes) <= 1
    everything = np.sort(np.concatenate([np.concatenate(share) for share in shares]))
    assert np.array_equal(everything, np.arange(101))


def test_random_single_shares_stay_single_images():
    requests = access.random_single(500, 40, seed=2)
    shares = access.client_shares(vocabulary.RANDOM_SINGLE, requests, 3, 64)
    assert all(len(request) == 1 for share in shares for request in share)
    assert sum(len(share) for share in shares) == 40


def test_buffered_shuffle_shares_take_every_nth_unit():
    epoch = access.buffered_shuffle(100, 10, 20, seed=3)
    shares = access.client_shares(vocabulary.BUFFERED_SHUFFLE, epoch, 3, 10)
    assert [share.units for share in shares] == [epoch.units[r::3] for r in range(3)]
    assert [share.reader for share in shares] == [0, 1, 2]


# --- the plan and the Slurm resources -------------------------------------------------------


def test_read_kinds_add_the_clients_of_request_patterns_only():
    config = {
        "read_cache": ["cold"],
        "read_patterns": ["whole", "shuffled"],
        "readers": [1],
        "readahead": ["on"],
        "clients": [{"nodes": 1, "per_node": 2}, {"nodes": 2, "per_node": 1}],
        "random_reads": 10,
    }
    kinds = plan.read_kinds(config, 100, 32)
    many = [kind for kind in kinds if kind.get("per_node")]
    assert [(k["read_pattern"], k["nodes"], k["per_node"], k["readers"]) for k in many] == [
        ("shuffled", 1, 2, 1),
        ("shuffled", 2, 1, 1),
    ]
    assert all("per_node" not in kind for kind in kinds if kind not in many)


def multi_node_config(clients_list):
    return {
        "read_cache": ["cold"],
        "read_patterns": ["shuffled"],
        "readers": [1],
        "readahead": ["on"],
        "clients": clients_list,
        "random_reads": 10,
    }


@pytest.mark.parametrize(
    "clients_list, expected",
    [
        ([], {"nodes": None, "mpi": None, "tasks_per_node": None, "tasks": None}),
        ([{"nodes": 1, "per_node": 4}], {"nodes": None, "mpi": None}),
        (
            [{"nodes": 2, "per_node": 2}, {"nodes": 1, "per_node": 1}],
            {"nodes": 2, "mpi": "srun", "tasks_per_node": 2, "tasks": None, "cpus_per_task": 1},
        ),
        ([{"nodes": 3, "per_node": 1}], {"nodes": 3, "tasks_per_node": None, "tasks": 3}),
    ],
)
def test_a_job_with_clients_on_several_nodes_is_a_multi_node_slurm_job(
    monkeypatch, clients_list, expected
):
    config = multi_node_config(clients_list)
    monkeypatch.setattr(
        plan, "job_read_kinds", lambda config, wildcards: plan.read_kinds(config, 100, 32)
    )
    wildcards = SimpleNamespace(cutoff="100", image_size="32")
    for name, value in expected.items():
        assert job_resources.MultiNode(config, name)(wildcards) == value, name


# --- refusals ----------------------------------------------------------------------------


def test_several_nodes_without_slurm_are_refused_in_one_sentence(tmp_path):
    with pytest.raises(clients.ClientsError, match="need a Slurm job of 2 nodes"):
        clients.refuse_unshared_store(tmp_path, 2, clients.LOCAL)


def test_a_store_on_tmpfs_is_refused_for_clients_on_several_nodes(monkeypatch):
    shm = Path("/dev/shm")
    assert clients.fsutil.filesystem_of(shm)[0] == "tmpfs"  # Linux always has one
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    with pytest.raises(clients.ClientsError, match="no other node sees: set store_dir"):
        clients.refuse_unshared_store(shm, 2, clients.SRUN)
    clients.refuse_unshared_store(shm, 1, clients.SRUN)  # one node: its own disk is fine


def test_a_client_that_does_not_see_the_store_refuses_it(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    visible = tmp_path / ".clients-token"
    task = ClientTask(
        "npy",
        store,
        None,
        [],
        True,
        Path(),
        Path(),
        1,
        None,
        None,
        visible,
        "abc",
        "head",
        "cold",
        "fadvise",
    )
    with pytest.raises(RuntimeError, match="client 3 on host far does not see the store"):
        check_visible(task, 3, "far")  # no token file: another node's disk
    visible.write_text("another job's")
    with pytest.raises(RuntimeError, match="node-local disk; set store_dir"):
        check_visible(task, 3, "far")
    visible.write_text("abc")
    check_visible(task, 3, "far")


# --- reading ------------------------------------------------------------------------------


def client_points(method="npy", per_node=(0, 1, 2), cache="warm", pattern="shuffled"):
    return [
        Point(method, cache=cache, pattern=pattern, per_node=count, batch_size=16)
        for count in per_node
    ]


def test_local_clients_read_and_check_every_share(pool_files, tmp_path):
    source, store = written_store(pool_files, tmp_path)
    rows = measure.run_reads(
        client_points(cache="cold"),
        source,
        store,
        env=ENV,
        settings=Settings(2, 5.0),
        pool_files=pool_files,
    )
    by_clients = {}
    for row in rows:
        by_clients.setdefault(row["clients"], []).append(row)
    assert sorted(by_clients) == [0, 1, 2]
    for count, group in by_clients.items():
        for row in group:
            assert row["images_read"] == COUNT and row["readers"] == 1 and row["nodes"] == 1
            if count == 0:
                assert np.isnan(row["images_per_s_per_client"])
                continue
            assert row["client_launch"] == clients.LOCAL
            assert row["client_hosts"] == socket.gethostname()
            seconds = [float(value) for value in row["client_seconds"].split(";")]
            assert len(seconds) == count
            assert max(seconds) <= row["seconds"]  # the point's wall time holds every pass
            assert row["images_per_s_per_client"] == pytest.approx(row["images_per_s"] / count)
            assert len(row["client_device_read_bytes"].split(";")) == count
    assert not list(store.parent.glob(".clients-*"))  # the token file is removed


def test_a_client_that_reads_wrong_images_fails_the_read_naming_it(pool_files, tmp_path):
    source, store = written_store(pool_files, tmp_path)
    other = np.load(pool_files[0])[::-1].copy()  # the store checked against other images
    images = tmp_path / "other.npy"
    np.save(images, other)
    with pytest.raises(measure.VerificationError, match=r"npy client \d of 2 \(host .*\) failed"):
        measure.run_reads(
            client_points(per_node=(2,)),
            source,
            store,
            env=ENV,
            settings=Settings(1, 0),
            pool_files=(images, pool_files[1]),
        )


def test_a_killed_client_fails_the_read_and_the_others_are_stopped(pool_files, tmp_path):
    source, store = written_store(pool_files, tmp_path)
    point = client_points(per_node=(3,))[0]
    read = measure.ReadOfStore.plan(point, measure.get_method("npy"), source, store, None)
    with pytest.raises(measure.VerificationError) as failure:  # noqa: SIM117
        with read.clients_started(None, pool_files) as group:
            started = [identity(hello.pid) for hello in group.hellos.values()]
            assert all(running(one) for one in started)
            os.kill(group.hellos[1].pid, signal.SIGKILL)
            read.time_once(None)
    message = str(failure.value)
    assert "client 1 of 3" in message and socket.gethostname() in message
    assert "died without reporting" in message
    deadline = time.monotonic() + 10
    while any(running(one) for one in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(running(one) for one in started)
    assert not descendants(os.getpid())  # nothing of the read is left running


JOB = """
import sys, time
from pathlib import Path
from imgbench.harness import measure
from imgbench.harness.point import Point
images, labels, store = map(Path, sys.argv[1:4])
source = measure.load_source(images, labels, int(sys.argv[4]), 64)
point = Point("npy", cache="warm", pattern="shuffled", per_node=2, batch_size=16)
read = measure.ReadOfStore.plan(point, measure.get_method("npy"), source, store, None)
with read.clients_started(None, (images, labels)) as group:
    print(" ".join(str(h.pid) for h in group.hellos.values()), flush=True)
    time.sleep(60)
"""


def test_clients_die_with_the_job(pool_files, tmp_path):
    """A job killed by a signal it cannot catch takes its local clients with it."""
    _, store = written_store(pool_files, tmp_path)
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    arguments = [*map(str, pool_files), str(store), str(COUNT)]
    job = subprocess.Popen(
        [sys.executable, str(script), *arguments], stdout=subprocess.PIPE, text=True
    )
    try:
        pids = [int(pid) for pid in job.stdout.readline().split()]
        started = [identity(pid) for pid in pids]
        assert len(pids) == 2 and all(one and running(one) for one in started)
        job.kill()
        job.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(one and running(one) for one in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(one and running(one) for one in started)
    finally:
        job.kill()
        job.wait()
