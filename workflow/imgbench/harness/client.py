"""One client of a many-clients read: a process of its own that reads its share of a store.

Started by the read job (``clients``) as ``python -m imgbench.harness.client``, either as a
process of the job's machine (``local``) or as a task of ``srun`` on a node of the job's
Slurm allocation (``srun``): the same code either way. It finds the job's coordinator in
the environment (``ENV_ADDRESS``, ``ENV_KEY``: a TCP address and the key that
authenticates both ends, ``multiprocessing.connection``'s HMAC handshake), says who it is
(its rank, host, pid), and is told what to read (``ClientTask``). Before it says it is
ready it checks that it sees the store (a token file the coordinator wrote beside it: a
store on node-local disk is refused for a client on another node), maps the pool the
store was written from (to check what it reads) and warms up on the job's one-image
scratch store (the library's first use, outside every clock). Then it serves the
coordinator's messages in order:

* ``prepare``: on a node other than the coordinator's, the node's first client brings
  the store's pages on this node to the point's state (evicted for a cold read, filled
  for a warm one; the coordinator prepares its own node);
* ``go``: the timed pass: open the store, serve the share, close it (``readers``'s
  ``timed_requests``, with nothing checked inside); it reports its latencies, its own
  start and finish, CPU time, device bytes and peak resident set (``ClientPass``);
* ``check``: the untimed pass: every request of the share read again and checked;
* ``end``: exit.

Any failure is reported with its message and ends the client; a client whose coordinator
is gone ends when it next waits for a message (its connection closes).
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Client
from pathlib import Path

import numpy as np

ENV_ADDRESS = "IMGBENCH_CLIENTS_ADDRESS"  # host:port of the coordinator
ENV_KEY = "IMGBENCH_CLIENTS_KEY"  # hex of the connection's authentication key
ENV_RANK = "IMGBENCH_CLIENT_RANK"  # a local client's rank (srun's: SLURM_PROCID)


@dataclass(frozen=True)
class Hello:
    """Who a client is: its rank among the point's clients, host, pid, whether it is the
    first client of its node (``leader``: it prepares the node's page cache), and its
    kernel's boot id (``boot_id``: hosts that share one kernel, as namespaces do, share
    the CPUs the coordinator counts)."""

    rank: int
    host: str
    pid: int
    leader: bool
    boot_id: str = ""


def boot_id() -> str:
    """This kernel's boot id ("" where it cannot be read)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class ClientTask:
    """What a client reads and checks: its ``share`` of the point's requests."""

    method: str
    store_dir: Path
    scratch: Path | None
    share: object  # a list of index arrays, or an ``access.BufferedShuffle``
    readahead: bool
    images_path: Path
    labels_path: Path
    cutoff: int
    chunk_images: int | None
    floor_db: float | None
    visible: Path  # a file the coordinator wrote beside the store
    token: str  # what it holds
    coordinator_host: str
    cache: str
    eviction: str


@dataclass(frozen=True)
class ClientPass:
    """What one client measured in one timed pass (``perf_counter_ns`` of its host)."""

    rank: int
    host: str
    latencies_ns: np.ndarray
    started_ns: int  # when it saw the release
    finished_ns: int
    cpu_seconds: float
    device_read_bytes: int | None
    peak_rss_bytes: int

    @property
    def seconds(self) -> float:
        return (self.finished_ns - self.started_ns) / 1e9


def rank_from_environment() -> int:
    """This client's rank: ``ENV_RANK`` (local), else srun's ``SLURM_PROCID``."""
    value = os.environ.get(ENV_RANK) or os.environ.get("SLURM_PROCID")
    if value is None:
        raise RuntimeError(f"a client needs {ENV_RANK} or SLURM_PROCID in its environment")
    return int(value)


def is_leader() -> bool:
    """Whether this is its node's first client (srun's ``SLURM_LOCALID`` 0; a local client
    shares the coordinator's node, which the coordinator prepares)."""
    local_id = os.environ.get("SLURM_LOCALID")
    return os.environ.get(ENV_RANK) is None and local_id is not None and int(local_id) == 0


def check_visible(task: ClientTask, rank: int, host: str) -> None:
    """Refuse, in one sentence, a store this client cannot see as the coordinator wrote it."""
    try:
        seen = task.visible.read_text()
    except OSError:
        seen = None
    if seen != task.token or not task.store_dir.is_dir():
        raise RuntimeError(
            f"client {rank} on host {host} does not see the store the job wrote on "
            f"{task.coordinator_host} ({task.store_dir}): it is on node-local disk; set "
            "store_dir to a file system every node of the allocation mounts (a parallel or "
            "network file system) for a read with clients on several nodes"
        )


def source_of(task: ClientTask):
    """The pool the store was written from, memory-mapped (the checks read it; several
    clients on one node share its pages), tiled to the cutoff."""
    from imgbench.data import pool

    images = np.load(task.images_path, mmap_mode="r", allow_pickle=False)
    labels = np.load(task.labels_path, allow_pickle=False)
    return pool.TiledImages(images, labels, task.cutoff, task.chunk_images)


def prepare_node(task: ClientTask, files: list[str]) -> float:
    """This node's page cache brought to the point's state; the store's cached fraction
    before (cold) or after filling (warm)."""
    from imgbench.experiment import vocabulary
    from imgbench.system import fsutil, pagecache

    os.sync()
    if task.cache != vocabulary.COLD:
        return pagecache.fill_tree_measured(task.store_dir, files)
    if task.eviction == vocabulary.DROP_CACHES:
        fraction = pagecache.cached_fraction(task.store_dir, files)
        fsutil.drop_caches()
        return fraction
    return pagecache.evict_tree_measured(task.store_dir, files).cached_fraction


def timed_pass(module, task: ClientTask, rank: int, host: str) -> ClientPass:
    """Open the store, serve the share, close it: the work inside the point's clock."""
    from imgbench.harness import readers
    from imgbench.system import machine

    started = time.perf_counter_ns()
    gc.disable()
    io_before, cpu_before = machine.io_read_bytes(), time.process_time()
    latencies = readers.timed_requests(module, task.store_dir, task.share, task.readahead)
    finished = time.perf_counter_ns()
    cpu = time.process_time() - cpu_before
    io_after = machine.io_read_bytes()
    gc.enable()
    device = None if io_before is None or io_after is None else io_after - io_before
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return ClientPass(rank, host, latencies, started, finished, cpu, device, peak)


def serve(connection, rank: int, host: str) -> None:
    """Receive the task, get ready, then serve the coordinator's messages until ``end``."""
    from imgbench.harness import readers, verification
    from imgbench.methods import get_method
    from imgbench.system import fsutil

    task: ClientTask = connection.recv()
    check_visible(task, rank, host)
    module = get_method(task.method)
    check = verification.request_check(task.method, source_of(task), task.floor_db)
    if task.scratch is not None:  # the library's first use, outside every clock
        readers.checked_requests(module, task.scratch, [np.array([0])], task.readahead, check)
    files: list[str] | None = None
    connection.send(("ready", None))
    while True:
        kind, _ = connection.recv()
        if kind == "prepare":
            files = fsutil.store_paths(task.store_dir) if files is None else files
            connection.send(("prepared", prepare_node(task, files)))
        elif kind == "go":
            connection.send(("timed", timed_pass(module, task, rank, host)))
        elif kind == "check":
            readers.checked_requests(module, task.store_dir, task.share, task.readahead, check)
            connection.send(("checked", None))
        elif kind == "end":
            return
        else:
            raise RuntimeError(f"a client got {kind!r}, which it does not know")


def main() -> int:
    rank, host = rank_from_environment(), socket.gethostname()
    address, port = os.environ[ENV_ADDRESS].rsplit(":", 1)
    connection = Client((address, int(port)), authkey=bytes.fromhex(os.environ[ENV_KEY]))
    try:
        connection.send(("hello", Hello(rank, host, os.getpid(), is_leader(), boot_id())))
        serve(connection, rank, host)
    except EOFError:  # the coordinator is gone: nobody to report to
        return 1
    except BaseException as error:  # reported to the coordinator, which fails the read
        with contextlib.suppress(OSError):
            connection.send(("error", f"{type(error).__name__}: {error}"))
        return 1
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    # run as the package's module, so that what it sends unpickles as
    # imgbench.harness.client's classes, not __main__'s
    from imgbench.harness import client

    sys.exit(client.main())
