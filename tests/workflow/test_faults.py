"""Failing safely: space checks, no partial or orphaned stores, one-sentence errors.

The file-system faults are injected for real: a small tmpfs that fills up, a read-only
mount, /proc. Mounting needs root: on CI (root) these run; elsewhere they skip with the
reason.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from ci import unavailable
from processes import identity, in_session, job_processes, wait_until_ended
from workflow_runs import REPO, cifar_dataset, copy_workflow, snakemake, start_snakemake

from imgbench.experiment import config as config_module
from imgbench.harness import measure, space, storeref
from imgbench.harness.point import Point
from imgbench.methods import available_methods
from imgbench.system import fsutil

WORKFLOW = REPO / "workflow"


def noise_images(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Incompressible images: the worst case for every method's size."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    return images, rng.integers(0, 10, size=count, dtype=np.uint8)


# ---- estimates and checks -------------------------------------------------------------


@pytest.mark.parametrize("method", available_methods())
@pytest.mark.parametrize("count, size", [(1, 32), (40, 32), (5, 64)])
def test_disk_bytes_is_an_upper_bound_of_the_store(tmp_path, method, count, size):
    images, labels = noise_images(count, size)
    store = tmp_path / "store"
    store.mkdir()
    from imgbench import methods

    methods.store(method, store, images, labels)
    used = fsutil.disk_usage(store).bytes_on_disk
    estimate = space.store_bytes(method, count, size * size * 3)
    assert used <= estimate
    assert estimate >= count * size * size * 3  # never less than the pixels


def test_space_check_refuses_a_store_that_cannot_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(space, "free_bytes", lambda path: 50_000_000)
    with pytest.raises(space.StoreSpaceError) as caught:
        space.check_store_fits(tmp_path / "s", "png/default 32px 20,000-image", 90_000_000)
    message = str(caught.value)
    assert message.startswith("no space for the png/default 32px 20,000-image store")
    assert "85.8 MiB" in message and "47.7 MiB free" in message  # 90 MB and 50 MB
    assert "store_dir" in message and "lower the cutoffs" in message
    assert "\n" not in message
    space.check_store_fits(tmp_path / "s", "small", 1_000_000)  # fits: no error


def test_store_dir_under_proc_is_one_sentence():
    problem = space.store_dir_problem(Path("/proc/foo"))
    assert problem is not None
    assert problem.startswith("store_dir /proc/foo is on the proc pseudo file system")
    assert "point store_dir at a directory on a disk" in problem


def test_store_dir_under_a_file_is_one_sentence(tmp_path):
    (tmp_path / "file").write_text("x")
    problem = space.store_dir_problem(tmp_path / "file" / "stores")
    assert problem is not None and "which is a file" in problem


@pytest.mark.parametrize(
    "error, words",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left"),
        (OSError("Not enough free space to write 61440000 bytes after offset 128"), "no space"),
        (OSError("1843200 requested and 1044352 written"), None),  # full only if low space
        (OSError(errno.EROFS, "Read-only file system"), "read-only file system"),
        (PermissionError(errno.EACCES, "Permission denied"), "cannot be written"),
        (ValueError("something else"), None),
    ],
)
def test_describe_os_error(tmp_path, error, words):
    sentence = space.describe_os_error(error, tmp_path)
    if words is None:
        # a short write or an I/O error means "no space" only when the disk was nearly full
        assert sentence is None
        error.free_at_failure = 4096
        if "written" in str(error):
            assert space.describe_os_error(error, tmp_path).startswith("no space left")
    else:
        assert words in sentence and f"store_dir ({tmp_path})" in sentence


def test_md5_given_as_a_number_asks_for_quotes():
    config = {"dataset": {"md5": 12345678901234567890123456789012}}
    with pytest.raises(config_module.ConfigError) as caught:
        config_module.validate_config(config, WORKFLOW / "schemas" / "config.schema.yaml")
    assert "put it in quotes" in str(caught.value)
    assert "dataset.md5" in str(caught.value)


# ---- claims, release and the sweep ----------------------------------------------------


def claimed_store(root: Path, relative: str, state: str, pid: int | None = None) -> Path:
    store = root / relative
    storeref.claim(store)
    store.mkdir(parents=True)
    (store / "data.bin").write_bytes(b"x" * 1000)
    record = {"store": str(store), "state": state, "host": os.uname().nodename}
    record["pid"] = os.getpid() if pid is None else pid
    storeref.claim_path(store).write_text(json.dumps(record))
    return store


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_sweep_removes_only_unowned_and_abandoned_stores(tmp_path):
    root = tmp_path / "stores"
    owned = claimed_store(root, "npy/default/32px/10/repeat1", "complete")
    orphan = claimed_store(root, "png/default/32px/20000/repeat1", "complete")
    killed = claimed_store(root, "npy/default/32px/100/repeat2", "writing", dead_pid())
    (killed.parent / "repeat2.warmup-999999").mkdir()  # scratch of the killed job
    running = claimed_store(root, "lmdb/default/32px/10/repeat1", "writing", os.getppid())
    user_file = root / "png" / "my-notes.txt"
    user_file.write_text("mine")
    user_dir = root / "scratch-of-mine"
    user_dir.mkdir()
    unclaimed = root / "hdf5" / "default" / "32px" / "10" / "repeat1"
    unclaimed.mkdir(parents=True)
    (unclaimed / "old.h5").write_bytes(b"y")
    empty_layout = root / "hdf5" / "gzip" / "32px" / "1000"
    empty_layout.mkdir(parents=True)

    removed = storeref.sweep(root, [owned, running])

    assert sorted(removed) == sorted([orphan, killed])
    for store in (orphan, killed):
        assert not store.exists() and not storeref.claim_path(store).exists()
    assert not (killed.parent / "repeat2.warmup-999999").exists()
    assert not (root / "png" / "default").exists()  # emptied layout directories go
    assert not (root / "hdf5" / "gzip").exists()
    for kept in (owned, running, unclaimed):
        assert kept.is_dir()
    assert user_file.read_text() == "mine" and user_dir.is_dir()


def test_sweep_keeps_complete_stores_when_stores_are_kept(tmp_path):
    root = tmp_path / "stores"
    orphan = claimed_store(root, "png/default/32px/20000/repeat1", "complete")
    killed = claimed_store(root, "npy/default/32px/100/repeat2", "writing", dead_pid())
    assert storeref.sweep(root, [], keep_complete=True) == [killed]
    assert orphan.is_dir()


def test_writing_removes_the_store_when_the_block_fails(tmp_path):
    root = tmp_path / "stores"
    store = root / "npy" / "default" / "32px" / "10" / "repeat1"
    with pytest.raises(RuntimeError), storeref.writing(store, root):
        store.mkdir()
        (store / "part.bin").write_bytes(b"z" * 100)
        raise RuntimeError("failed half-way")
    assert not store.exists() and not storeref.claim_path(store).exists()
    assert list(root.iterdir()) == []  # the layout directories went with it


def test_remove_store_removes_claim_and_empty_layout(tmp_path):
    root = tmp_path / "stores"
    store = claimed_store(root, "npy/default/32px/10/repeat1", "complete")
    manifest = tmp_path / "m.json"
    storeref.write_manifest(manifest, store)
    assert storeref.remove(manifest, keep=False, root=root) == ([store], True)
    assert list(root.iterdir()) == []


DRIVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {workflow!r})
    from imgbench.harness import storeref
    from imgbench.jobs import scriptlog
    store, root, log = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    logger = scriptlog.setup(log, lambda e: f"{{e}}; the partial store was removed")
    with storeref.writing(store, root):
        store.mkdir()
        index = 0
        while True:
            (store / f"{{index}}.bin").write_bytes(b"p" * 4096)
            index += 1
            if index == 50:
                Path(sys.argv[4]).touch()  # written something: ready for the signal
            time.sleep(0.001)
    """
)


def start_driver(tmp_path: Path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(workflow=str(WORKFLOW)))
    root = tmp_path / "stores"
    store = root / "png" / "default" / "32px" / "10000" / "repeat1"
    ready = tmp_path / "ready"
    log = tmp_path / "job.log"
    process = subprocess.Popen(
        [sys.executable, str(script), str(store), str(root), str(log), str(ready)],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the driver never started writing"
        time.sleep(0.01)
    return process, root, store, log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_store_job_removes_its_partial_store(tmp_path, signum):
    process, root, store, log = start_driver(tmp_path)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode != 0
    assert not store.exists() and not storeref.claim_path(store).exists()
    assert not root.exists() or list(root.iterdir()) == []
    name = signal.Signals(signum).name
    sentence = f"the job was interrupted by {name}; the partial store was removed"
    assert sentence in stderr
    assert "Traceback" not in stderr  # one sentence on the console ...
    assert sentence in log.read_text() and "Traceback" in log.read_text()  # ... all in the log


def test_a_killed_store_job_is_cleaned_up_by_the_next_sweep(tmp_path):
    process, root, store, _ = start_driver(tmp_path)
    process.kill()
    process.wait(timeout=30)
    assert store.is_dir()  # SIGKILL cannot be caught: the partial store stays ...
    assert storeref.sweep(root, [store]) == [store]  # ... until the next run, owned or not
    assert not store.exists() and list(root.iterdir()) == []


# ---- real faults on a small tmpfs (root) ----------------------------------------------


@contextmanager
def tmpfs(path: Path, size: str, *options: str):
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs for fault injection needs root")
    path.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs"]
    result = subprocess.run([*mount, str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("method", available_methods())
def test_a_full_file_system_fails_the_store_in_one_sentence_and_leaves_nothing(tmp_path, method):
    images, labels = noise_images(600, 32)  # 1.8 MB of pixels on a 1 MB file system
    with tmpfs(tmp_path / "small", "1m") as root:
        store = root / method / "default" / "32px" / "600" / "repeat1"
        with pytest.raises(Exception) as caught, storeref.writing(store, root):
            measure.run_store(Point(method, fsync="none"), (images, labels), store, env={})
        sentence = space.describe_os_error(caught.value, root)
        assert sentence is not None, f"{type(caught.value).__name__}: {caught.value}"
        assert sentence.startswith(f"no space left on the file system of store_dir ({root})")
        assert list(root.iterdir()) == []  # nothing of the failed store remains


def test_a_read_only_store_dir_is_one_sentence(tmp_path):
    with tmpfs(tmp_path / "ro", "1m", "ro") as root:
        problem = space.store_dir_problem(root / "stores")
        assert problem is not None
        assert problem.startswith(f"store_dir {root / 'stores'} is on a read-only file system")
        with pytest.raises(space.StoreSpaceError):
            space.check_store_dir(root / "stores")


# ---- the workflow on a small tmpfs (root, end to end) ---------------------------------


def workflow_copy(tmp_path: Path, tiny_archive, **changes) -> Path:
    """The workflow in ``tmp_path``/workflow on the tiny archive: png, one repeat, one warm
    whole read, a png figure; ``changes`` on top."""
    archive, md5, _, _ = tiny_archive
    return copy_workflow(
        tmp_path / "workflow",
        **{
            "dataset": cifar_dataset(archive, md5),
            "methods": ["png"],
            "repeats": 1,
            "inner_repeats": 1,
            "read_cache": ["warm"],
            "read_patterns": ["whole"],
            "readahead": ["on"],
            "plot": {"formats": ["png"], "dpi": 50, "spread": "ci"},
            **changes,
        },
    )


def assert_a_rerun_measures_the_point_whole(workdir: Path, stores: Path) -> None:
    """A plain rerun after a stopped or killed job: every row once, no store left."""
    snakemake(workdir, cores=2)
    timings = (workdir / "results" / "timings.csv").read_text().splitlines()
    assert len(timings) == 1 + 2  # header, one store row and one read row
    assert len(set(timings)) == len(timings)
    assert list(stores.iterdir()) == []


@pytest.mark.e2e
def test_a_run_that_cannot_fit_stops_at_the_start_and_completes_after_remounting(
    tmp_path, tiny_archive
):
    stores = tmp_path / "stores"
    # png at 3,000 images: up to 12.3 MB (4 KB a file), with the 10-image store sharing
    # its jobs (small_store_bytes) and the 16 MB margin: 28 MB
    workdir = workflow_copy(
        tmp_path, tiny_archive, n_images=3000, cutoffs=[10, 3000], store_dir=str(stores)
    )
    with tmpfs(stores, "24m"):
        first = snakemake(workdir, cores=2, check=False)
        assert first.returncode != 0
        label = "png/default 32px 10- and 3,000-image stores of one job"
        assert f"no space for this run: its largest store ({label})" in first.stderr
        assert f"under store_dir ({stores})" in first.stderr
        assert not list(stores.iterdir())  # stopped before any store was written

        remount = ["mount", "-o", "remount,size=64m", str(stores)]
        subprocess.run(remount, check=True)
        second = snakemake(workdir, cores=2)
        assert f"Disk: the largest store ({label}) needs up to" in second.stderr
        assert list(stores.iterdir()) == []  # stores removed after their reads, no trees
    timings = (workdir / "results" / "timings.csv").read_text().splitlines()
    assert len(timings) == 1 + 2 * 2  # header, then a store and a read row per cutoff


@pytest.mark.e2e
def test_a_run_removes_orphaned_stores_and_nothing_of_the_users(tmp_path, tiny_archive):
    stores = tmp_path / "stores"
    workdir = workflow_copy(
        tmp_path, tiny_archive, n_images=20, cutoffs=[10], store_dir=str(stores)
    )
    orphan = claimed_store(stores, "png/default/32px/20000/repeat1", "complete")
    killed = claimed_store(stores, "png/default/32px/10/repeat1", "writing", dead_pid())
    (stores / "README-mine.txt").write_text("mine")

    result = snakemake(workdir, cores=2)

    assert f"Removed the orphaned store {orphan}" in result.stderr
    assert f"Removed the orphaned store {killed}" in result.stderr
    assert sorted(p.name for p in stores.iterdir()) == ["README-mine.txt"]


GUARDED = textwrap.dedent(
    """
    import mmap, os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {workflow!r})
    from imgbench.jobs import scriptlog
    target, log = Path(sys.argv[1]), sys.argv[2]
    scriptlog.setup(log)

    def main():
        with open(target, "w+b") as handle:
            handle.truncate(8 << 20)  # a sparse file larger than its file system
            view = mmap.mmap(handle.fileno(), 8 << 20)
            for offset in range(0, 8 << 20, 4096):
                view[offset] = 1  # past the free space: SIGBUS, no exception possible

    scriptlog.run_guarded(
        main, lambda signum: f"killed by {{signal.Signals(signum).name}}: one sentence"
    )
    """
)


def test_a_job_killed_by_sigbus_on_a_full_disk_ends_with_one_sentence(tmp_path):
    script = tmp_path / "guarded.py"
    script.write_text(GUARDED.format(workflow=str(WORKFLOW)))
    log = tmp_path / "job.log"
    with tmpfs(tmp_path / "small", "1m") as root:
        result = subprocess.run(
            [sys.executable, str(script), str(root / "mapped.bin"), str(log)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "killed by SIGBUS: one sentence" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Bus error" in log.read_text()  # faulthandler's report of the child, in the log


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_run_stopped_during_a_store_leaves_no_partial_store_and_reruns_whole(
    tmp_path, tiny_archive, signum
):
    """Ctrl-C (SIGINT to the process group), or SIGTERM to the store job as a batch system
    sends it (Snakemake itself takes SIGTERM as "finish the running jobs"), while a
    20,000-image PNG store is being written: nothing of it stays, and a plain rerun gives
    every row once."""
    stores = tmp_path / "stores"
    workdir = workflow_copy(
        tmp_path, tiny_archive, n_images=20000, cutoffs=[20000], store_dir=str(stores)
    )
    process = start_snakemake(workdir, cores=2)
    store = stores / "png" / "default" / "32px" / "20000" / "repeat1"
    deadline = time.monotonic() + 300
    while not (store.is_dir() and len(os.listdir(store)) > 500):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the store job never got going"
        time.sleep(0.05)
    if signum == signal.SIGINT:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        os.kill(job_processes(process.pid, b".store.py")[0], signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert not store.exists(), "the partial store stayed behind"
    assert not storeref.claim_path(store).exists()
    log = workdir / "logs" / "store" / "png" / "default" / "32px" / "20000" / "repeat1.log"
    assert "the partial png/default 32px 20,000-image (repeat 1) store was removed" in (
        log.read_text()
    )

    assert_a_rerun_measures_the_point_whole(workdir, stores)


def wait_for_job(process, script: bytes, processes: int, ready=lambda: True) -> tuple[int, list]:
    """The job of this run (its session) whose command line names ``script``, once it has
    ``processes`` processes below its top (worker, watcher, readers) and ``ready()``."""
    deadline = time.monotonic() + 300
    while True:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"the {script!r} job never got going"
        job = job_processes(process.pid, script)
        if job is not None and len(job[1]) >= processes and ready():
            return job
        time.sleep(0.01)


@pytest.mark.e2e
@pytest.mark.parametrize("victim", ["worker", "guard"])
@pytest.mark.parametrize("job", ["store", "read"])
def test_a_job_killed_by_sigkill_leaves_no_process_and_reruns_whole(
    tmp_path, tiny_archive, job, victim
):
    """SIGKILL (the OOM killer, kill -9) to a job's worker, or to the job's own process
    (the guard, the worker's parent), during the timed work of a 20,000-image PNG store or
    of its shuffled read by 2 readers: within seconds no process of the job remains (the
    memory watcher and the readers used to run on for hours), and a plain rerun measures
    the point whole."""
    stores = tmp_path / "stores"
    workdir = workflow_copy(
        tmp_path,
        tiny_archive,
        n_images=20000,
        cutoffs=[20000],
        store_dir=str(stores),
        read_patterns=["shuffled"],
        readers=[2],
    )
    process = start_snakemake(workdir, cores=2)
    try:
        store = stores / "png" / "default" / "32px" / "20000" / "repeat1"
        if job == "store":  # the worker and its watcher, 500 images written
            guard, below = wait_for_job(
                process, b".store.py", 2, lambda: store.is_dir() and len(os.listdir(store)) > 500
            )
        else:  # the worker, its watcher and the 2 readers
            guard, below = wait_for_job(process, b".read.py", 4)
            time.sleep(0.2)  # into the readers' timed work
        worker = below[0]
        tracked = [p for p in (identity(pid) for pid in [guard, *below]) if p is not None]
        killed_at = time.monotonic()
        os.kill(worker if victim == "worker" else guard, signal.SIGKILL)
        left = wait_until_ended(tracked, 10.0)
        ended_s = time.monotonic() - killed_at
        assert left == [], f"processes {left} of the {job} job outlived its {victim}"
        print(f"{job} job, {victim} SIGKILLed: every process ended within {ended_s:.2f} s")
        process.communicate(timeout=120)
        assert process.returncode != 0
        assert (
            wait_until_ended(
                [p for p in (identity(pid) for pid in in_session(process.pid)) if p], 5.0
            )
            == []
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert_a_rerun_measures_the_point_whole(workdir, stores)
