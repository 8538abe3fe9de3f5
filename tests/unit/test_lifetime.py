"""No process outlives its job: every process the package forks dies with its parent,
even when the parent is killed by SIGKILL (the out-of-memory killer, ``kill -9``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from processes import descendants, identity, running, wait_until_ended

from imgbench.harness import memory, timed_reads
from imgbench.methods import get_method
from imgbench.system import lifetime

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflow"
ENDED_WITHIN_S = 5.0


def wait_for_descendants(pid: int, count: int, timeout_s: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while len(found := descendants(pid)) < count:
        assert time.monotonic() < deadline, f"pid {pid} never had {count} descendants"
        time.sleep(0.01)
    return found


def kill_and_check(victim: int, below: list[int]) -> None:
    """SIGKILL ``victim``; every process ``below`` it must end within ENDED_WITHIN_S."""
    tracked = [identity(pid) for pid in below]
    tracked = [process for process in tracked if process is not None]
    assert tracked, "nothing to watch below the victim"
    os.kill(victim, signal.SIGKILL)
    left = wait_until_ended(tracked, ENDED_WITHIN_S)
    assert left == [], f"processes {left} outlived their parent {victim}"


def in_forked_worker(body) -> int:
    """Fork a plain child (as a job's worker is to its guard) that runs ``body`` and then
    sleeps; returns its pid. The child never returns into pytest."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child; killed by the test)
        try:
            body()
            time.sleep(120)
        finally:
            os._exit(0)
    return pid


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def test_a_bound_child_has_the_parent_death_signal_and_a_plain_one_not():
    read_end, write_end = os.pipe()
    child = lifetime.fork()
    if child == 0:  # pragma: no cover
        os.write(write_end, str(lifetime.death_signal()).encode())
        os._exit(0)
    reap(child)
    assert int(os.read(read_end, 16)) == signal.SIGKILL
    assert lifetime.death_signal() == 0  # pytest itself is not bound to anything


def test_a_child_whose_parent_died_before_binding_ends_itself():
    """The parent may die between the fork and the prctl: the child sees another parent
    and exits instead of running unbound."""
    with pytest.raises(SystemExit):
        # os._exit is replaced so the check's exit is seen here, in this process
        original = os._exit
        try:
            os._exit = lambda code: (_ for _ in ()).throw(SystemExit(code))
            lifetime.die_with_parent(os.getppid() + 1_000_000)
        finally:
            os._exit = original


def test_the_memory_watcher_dies_with_its_worker():
    """The watcher an AnonWatch forks outlived a SIGKILLed worker for 1 h 36 min."""

    def body():
        with memory.AnonWatch():
            time.sleep(120)

    worker = in_forked_worker(body)
    try:
        below = wait_for_descendants(worker, 1)
        kill_and_check(worker, below)
    finally:
        reap(worker)


def test_the_memory_watcher_stops_sampling_when_its_parent_is_gone():
    """Without the kernel's signal (another OS, or a signal lost), the watcher's loop ends
    by itself once its parent is no longer its parent."""
    peak = type("Peak", (), {"value": 0})()

    class NeverStop:
        def wait(self, seconds):
            time.sleep(seconds)
            return False

    began = time.monotonic()
    memory._watch(os.getppid() + 1_000_000, peak, NeverStop(), 0.01)  # not our parent
    assert time.monotonic() - began < 1.0


@pytest.fixture
def npy_store(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=16, dtype=np.uint8)
    store = tmp_path / "npy"
    store.mkdir()
    get_method("npy").store(store, images, labels, options={})
    return store, images, labels


def test_reader_processes_die_with_their_worker(npy_store, monkeypatch):
    """A read job with 2 readers whose worker is SIGKILLed mid-read left both readers
    running; they are now killed with it."""
    store, images, labels = npy_store
    module = get_method("npy")
    real_open = module.open_reader

    class Stuck:
        def __init__(self, reader):
            self.reader = reader

        def get(self, indices):
            time.sleep(120)  # a read that never ends while the worker is killed
            return self.reader.get(indices)

        def close(self):
            self.reader.close()

    monkeypatch.setattr(module, "open_reader", lambda path, **kw: Stuck(real_open(path, **kw)))
    shares = [[np.array([0, 1])], [np.array([2, 3])]]

    def body():
        timed_reads.read_in_workers("npy", store, shares, images, labels, readahead=True)

    worker = in_forked_worker(body)
    try:
        below = wait_for_descendants(worker, 2)
        time.sleep(0.2)  # let the readers pass the start
        kill_and_check(worker, below)
    finally:
        reap(worker)


GUARDED = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {workflow!r})
    from imgbench.harness import memory
    from imgbench.jobs import scriptlog
    scriptlog.setup(sys.argv[1])

    def main():
        with memory.AnonWatch():
            time.sleep(120)

    scriptlog.run_guarded(main, lambda signum: "killed")
    """
)


def test_the_guards_child_and_its_watcher_die_with_the_guard(tmp_path):
    script = tmp_path / "guarded.py"
    script.write_text(GUARDED.format(workflow=str(WORKFLOW)))
    guard = subprocess.Popen([sys.executable, str(script), str(tmp_path / "job.log")])
    try:
        below = wait_for_descendants(guard.pid, 2)  # the job's worker and its watcher
        kill_and_check(guard.pid, below)
    finally:
        guard.kill()
        guard.wait()
    assert not any(running(identity(pid) or (pid, "")) for pid in below)
