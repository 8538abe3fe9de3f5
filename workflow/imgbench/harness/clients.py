"""Many clients reading one store: the coordinator of a many-clients read (``clients``).

A read point with ``clients`` (``{nodes: N, per_node: K}``) is measured by C = N x K
client processes (``client``), each with one reader of its own, each opening the store
itself and reading its share of the epoch (``access.client_shares``: split as a
distributed sampler splits it). The read job is their coordinator:

1. **start** (``ClientGroup.__enter__``, once per point): it listens on a TCP port (an
   authenticated ``multiprocessing.connection``; the key travels in the environment, not
   on a command line), writes a token file beside the store, and starts the clients:
   inside a Slurm job with ``srun`` over the allocation's nodes (``--nodes N
   --ntasks-per-node K``, ``--kill-on-bad-exit``), elsewhere as K processes of this
   machine bound to the job (they die with it). Each says hello (rank, host, pid), is
   given its share and says ready once it has checked that it sees the store (the
   token), mapped the pool and warmed up on the job's one-image scratch store. The
   clients must have run on N distinct hosts, or the read fails.
2. **each timed repetition** (``read_once``): the first client of every other node
   prepares that node's page cache (``prepare``: the store evicted for a cold read,
   filled for a warm one), the coordinator prepares its own node as every read does;
   then, inside the region, the clock starts and every client is released (``go``, one
   message each, in rank order). The read's time is the **wall time from the release
   until the last client finished**: a client's own finish where it shares the
   coordinator's host (one clock), else the moment its report arrived (another host's
   clock cannot be compared; the report's network latency is inside, once). Then an
   untimed pass in which every client reads its share again and checks every batch.
3. **end**: every client told to end and waited for.

A client that fails, dies or stays silent past the timeout fails the read with one
sentence naming the client and its host; the other clients are stopped (their processes
killed, or ``srun`` terminated, which ends the step's tasks on every node) and nothing of
the point is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path

import numpy as np

from imgbench.harness import client as client_process
from imgbench.harness.region import IN_READERS, Region
from imgbench.harness.verification import VerificationError
from imgbench.system import fsutil, lifetime, phases

logger = logging.getLogger("imgbench.clients")

LOCAL, SRUN = "local", "srun"
LAUNCHES = (LOCAL, SRUN)
# How the clients are started: srun inside a Slurm job, local elsewhere; this variable
# overrides it (tests, or an interactive allocation that should not use srun).
ENV_LAUNCH = "IMGBENCH_CLIENTS_LAUNCH"
# The address the clients connect to, if this host's name does not resolve to it.
ENV_HOST = "IMGBENCH_CLIENTS_HOST"
# File systems that no other node can see, whatever their mount point.
NODE_LOCAL_FS = ("tmpfs", "ramfs", "devtmpfs")


class ClientsError(VerificationError):
    """A many-clients read could not start, or a client failed, died or went silent: the
    read is not verified, as when a forked reader fails (``timed_reads``)."""


def launch_kind() -> str:
    """``srun`` inside a Slurm job (``SLURM_JOB_ID``, with ``srun`` on the path), else
    ``local``; ``ENV_LAUNCH`` overrides."""
    chosen = os.environ.get(ENV_LAUNCH)
    if chosen:
        if chosen not in LAUNCHES:
            raise ClientsError(f"{ENV_LAUNCH} must be one of {', '.join(LAUNCHES)}, not {chosen!r}")
        return chosen
    in_slurm = os.environ.get("SLURM_JOB_ID") and shutil.which("srun")
    return SRUN if in_slurm else LOCAL


def refuse_unshared_store(store_dir: Path, nodes: int, launch: str) -> None:
    """Refuse, in one sentence, a read on several nodes that cannot work: outside a Slurm
    allocation of as many nodes, or of a store on a file system no other node sees."""
    if nodes <= 1:
        return
    if launch != SRUN:
        raise ClientsError(
            f"clients on {nodes} nodes need a Slurm job of {nodes} nodes (run with "
            "--profile profiles/slurm); on one machine set clients to nodes: 1"
        )
    allocated = int(os.environ.get("SLURM_JOB_NUM_NODES") or os.environ.get("SLURM_NNODES") or 0)
    if allocated and allocated < nodes:
        raise ClientsError(
            f"clients on {nodes} nodes, but this Slurm job has {allocated}: the read rule's "
            "nodes resource was overridden (remove it from set-resources)"
        )
    fs_type, mount = fsutil.filesystem_of(store_dir)
    if fs_type in NODE_LOCAL_FS:
        raise ClientsError(
            f"the store {store_dir} is on {fs_type} ({mount}), which no other node sees: set "
            f"store_dir to a file system every node mounts for clients on {nodes} nodes"
        )


def coordinator_host(launch: str, nodes: int) -> str:
    """The address the clients connect to: loopback for local clients; for srun,
    ``ENV_HOST`` or what this host's name resolves to."""
    if launch == LOCAL:
        return "127.0.0.1"
    chosen = os.environ.get(ENV_HOST)
    if chosen:
        return chosen
    address = socket.gethostbyname(socket.gethostname())
    if address.startswith("127.") and nodes > 1:
        raise ClientsError(
            f"this host's name ({socket.gethostname()}) resolves to {address}, which clients "
            f"on other nodes cannot reach: set {ENV_HOST} to an address of this node"
        )
    return address


@dataclass
class ClientRead:
    """One timed repetition by the clients: what each measured, and when the last finished."""

    passes: list  # ``client.ClientPass``, in rank order
    cached_fraction: float  # the lowest of the nodes' (NaN: only this node's was measured)

    @property
    def latencies_ns(self) -> np.ndarray:
        return np.concatenate([one.latencies_ns for one in self.passes])


class ClientGroup:
    """The clients of one read point, started once and released for every repetition."""

    def __init__(
        self,
        task: client_process.ClientTask,
        shares: list,
        nodes: int,
        per_node: int,
        *,
        launch: str | None = None,
        timeout_s: float = 600.0,
    ):
        if len(shares) != nodes * per_node:
            raise ValueError(f"{nodes} x {per_node} clients need as many shares, not {len(shares)}")
        self.task, self.shares = task, shares
        self.nodes, self.per_node = nodes, per_node
        self.launch = launch_kind() if launch is None else launch
        self.timeout_s = timeout_s
        self.host = socket.gethostname()
        self.processes: list[subprocess.Popen] = []
        self.connections: dict[int, Connection] = {}
        self.hellos: dict[int, client_process.Hello] = {}

    @property
    def clients(self) -> int:
        return len(self.shares)

    # --- start and end ----------------------------------------------------------------

    def __enter__(self) -> ClientGroup:
        refuse_unshared_store(self.task.store_dir, self.nodes, self.launch)
        address = coordinator_host(self.launch, self.nodes)
        key = secrets.token_bytes(32)
        token = secrets.token_hex(16)
        visible = self.task.store_dir.parent / f".clients-{token}"
        self.visible = visible
        try:
            with phases.phase("readers start"):
                visible.write_text(token)
                server = socket.create_server(("0.0.0.0" if self.launch == SRUN else address, 0))
                try:
                    port = server.getsockname()[1]
                    self._start(f"{address}:{port}", key)
                    self._accept(server, key)
                finally:
                    server.close()
                for rank, connection in self.connections.items():
                    connection.send(
                        _task_for(self.task, self.shares[rank], visible, token, self.host)
                    )
                self._gather("ready")
                self._check_hosts()
            logger.info(
                "%d %s clients ready (%s): %s",
                self.clients,
                self.launch,
                self.task.store_dir,
                ", ".join(
                    f"client {rank} on {hello.host} pid {hello.pid}"
                    for rank, hello in sorted(self.hellos.items())
                ),
            )
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        with phases.phase("readers end"):
            if exc_type is None:
                try:
                    for connection in self.connections.values():
                        connection.send(("end", None))
                    self._wait_exit(30.0)
                except (OSError, ClientsError):
                    pass
            self._stop()

    def _start(self, address: str, key: bytes) -> None:
        """Start the clients: one ``srun`` over the nodes, or local processes."""
        env = dict(os.environ)
        env[client_process.ENV_ADDRESS] = address
        env[client_process.ENV_KEY] = key.hex()
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        command = [sys.executable, "-m", "imgbench.harness.client"]
        if self.launch == SRUN:
            srun = [
                "srun",
                "--overlap",
                "--kill-on-bad-exit=1",
                f"--nodes={self.nodes}",
                f"--ntasks={self.clients}",
                f"--ntasks-per-node={self.per_node}",
                "--cpus-per-task=1",
                "--job-name=imgbench-clients",
                "--export=ALL",
            ]
            env.pop(client_process.ENV_RANK, None)
            self.processes.append(subprocess.Popen([*srun, *command], env=env))
            return
        parent = os.getpid()
        for rank in range(self.clients):
            env_rank = {**env, client_process.ENV_RANK: str(rank)}
            self.processes.append(
                subprocess.Popen(
                    command,
                    env=env_rank,
                    preexec_fn=lambda: lifetime.die_with_parent(parent),  # noqa: B023
                )
            )

    def _launcher_exit(self) -> str:
        """What the launched processes' exit says, for an error message."""
        codes = [process.poll() for process in self.processes]
        if self.launch == SRUN:
            return f"srun exited with {codes[0]}" if codes[0] is not None else "srun still runs"
        ended = [f"client {rank}: {code}" for rank, code in enumerate(codes) if code is not None]
        return "exit codes " + ", ".join(ended) if ended else "every client process still runs"

    def _accept(self, server: socket.socket, key: bytes) -> None:
        """Accept every client's connection and hello, or fail by the timeout, or as soon
        as the launched processes have ended."""
        deadline = time.monotonic() + self.timeout_s
        while len(self.hellos) < self.clients:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([server], [], [], max(0.0, min(remaining, 0.2)))
            if not ready:
                if remaining <= 0 or all(p.poll() is not None for p in self.processes):
                    raise ClientsError(
                        f"{len(self.hellos)} of {self.clients} {self.task.method} clients "
                        f"connected ({self._launcher_exit()}); see the job's log for what they "
                        "printed"
                    )
                continue
            sock, _ = server.accept()
            sock.setblocking(True)
            connection = Connection(sock.detach())
            try:
                deliver_challenge(connection, key)
                answer_challenge(connection, key)
                kind, hello = connection.recv()
            except Exception:  # not one of ours: ignore it
                connection.close()
                continue
            if kind != "hello" or hello.rank in self.hellos or not 0 <= hello.rank < self.clients:
                connection.close()
                raise ClientsError(f"a client sent {kind!r} with rank {hello!r} at start")
            self.connections[hello.rank] = connection
            self.hellos[hello.rank] = hello

    def _check_hosts(self) -> None:
        """The clients must have run on as many hosts as the point's nodes."""
        hosts = self.client_hosts
        if len(hosts) != self.nodes:
            raise ClientsError(
                f"clients on {self.nodes} nodes ran on {len(hosts)} host(s) "
                f"({', '.join(hosts)}): the row would misname them"
            )

    @property
    def client_hosts(self) -> list[str]:
        return sorted({hello.host for hello in self.hellos.values()})

    def _wait_exit(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))

    def _stop(self) -> None:
        """Stop every client still running and close the connections."""
        for connection in self.connections.values():
            connection.close()
        for process in self.processes:
            if process.poll() is None:
                if self.launch == SRUN:
                    process.send_signal(signal.SIGTERM)  # srun ends the step's tasks
                else:
                    process.kill()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
        for descriptor in getattr(self, "_pidfds", []):
            os.close(descriptor)
        self._pidfds = []
        if getattr(self, "visible", None) is not None:
            self.visible.unlink(missing_ok=True)

    # --- the messages -----------------------------------------------------------------

    def _name(self, rank: int) -> str:
        hello = self.hellos.get(rank)
        where = f"host {hello.host}, pid {hello.pid}" if hello else "not connected"
        return f"{self.task.method} client {rank} of {self.clients} ({where})"

    def _gather(self, stage: str, ranks: list[int] | None = None) -> tuple[dict, dict]:
        """One ``stage`` message from each of ``ranks`` (all), and when each arrived
        (``perf_counter_ns`` right after it was seen); a client that reports an error,
        whose connection closes, or that is silent for the timeout fails the read."""
        ranks = sorted(self.connections) if ranks is None else ranks
        got: dict[int, object] = {}
        arrived: dict[int, int] = {}
        deadline = time.monotonic() + self.timeout_s
        exits = self._exit_descriptors()
        while len(got) < len(ranks):
            pending = {self.connections[r].fileno(): r for r in ranks if r not in got}
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([*pending, *exits], [], [], max(0.0, remaining))
            now = time.perf_counter_ns()
            late = ", ".join(self._name(r) for r in pending.values())
            if not ready:
                raise ClientsError(
                    f"{late} did not {stage} within {self.timeout_s:.0f} s; its node may be lost"
                )
            if not any(descriptor in pending for descriptor in ready):  # a launcher ended
                time.sleep(0.2)  # a last message may still be on its way
                if not any(self.connections[r].poll() for r in pending.values()):
                    raise ClientsError(
                        f"{late} did not {stage}: {self._launcher_exit()} while the clients "
                        f"were to {stage} (a client killed, or its node lost)"
                    )
                continue
            for descriptor in ready:
                if descriptor not in pending:
                    continue
                rank = pending[descriptor]
                try:
                    kind, payload = self.connections[rank].recv()
                except (EOFError, OSError):
                    time.sleep(0.2)  # let the launcher's exit be seen
                    raise ClientsError(
                        f"{self._name(rank)} died without reporting while the clients were to "
                        f"{stage} ({self._launcher_exit()}; -9 or 137: killed, e.g. by the "
                        "out-of-memory killer or a lost node)"
                    ) from None
                if kind == "error":
                    raise ClientsError(f"{self._name(rank)} failed: {payload}")
                if kind != stage:
                    raise ClientsError(f"{self._name(rank)} sent {kind!r} instead of {stage!r}")
                got[rank], arrived[rank] = payload, now
        return got, arrived

    def _exit_descriptors(self) -> list[int]:
        """A descriptor per launched process that becomes readable when it exits (Linux's
        pidfd): a launcher that ends before its clients reported fails the read at once,
        not after the timeout (srun ends when a node is lost)."""
        if not hasattr(self, "_pidfds"):
            self._pidfds = []
            for process in self.processes:
                with contextlib.suppress(AttributeError, OSError):  # else the timeout holds
                    self._pidfds.append(os.pidfd_open(process.pid))
        return self._pidfds

    def _send(self, message, ranks=None) -> None:
        for rank in sorted(self.connections) if ranks is None else ranks:
            try:
                self.connections[rank].send(message)
            except OSError:
                raise ClientsError(f"{self._name(rank)} is gone (its connection closed)") from None

    # --- a timed repetition -----------------------------------------------------------

    def read_once(self, region: Region, prepare: Callable[[], object]) -> ClientRead:
        """Prepare every node, release the clients together inside ``region``
        (``IN_READERS``), stop the clock when the last one finished; then the untimed
        check pass. The region counts the clients' CPU time, device bytes and peaks."""
        other_nodes = [
            rank for rank, hello in self.hellos.items() if hello.leader and hello.host != self.host
        ]
        fractions = []
        if other_nodes:
            with phases.phase("evict" if self.task.cache == "cold" else "fill cache"):
                self._send(("prepare", None), other_nodes)
                got, _ = self._gather("prepared", other_nodes)
                fractions = [float(value) for value in got.values()]
        prepare()
        with region:
            region.start_clock()
            self._send(("go", None))
            passes, arrived = self._gather("timed")
        finished = max(
            passes[rank].finished_ns if passes[rank].host == self.host else arrived[rank]
            for rank in passes
        )
        region.stop_clock(finished)
        with phases.phase("verify"):
            self._send(("check", None))
            self._gather("checked")
        ordered = [passes[rank] for rank in sorted(passes)]
        self._count(region, ordered)
        return ClientRead(ordered, min(fractions) if fractions else float("nan"))

    def _count(self, region: Region, passes: list) -> None:
        """The clients' CPU time, device bytes and peaks in the region, and what the rows
        carry of each. srun's tasks are not the job's children: the CPU time of those on
        this machine's kernel (this host, or another host name in a namespace of it) is
        taken out of the others' (``foreign_cpu_seconds``)."""
        region.count_readers(
            (one.cpu_seconds for one in passes),
            (one.device_read_bytes for one in passes),
            (one.peak_rss_bytes for one in passes),
        )
        if self.launch == SRUN:  # every client on this machine's kernel, whatever its host
            kernel = client_process.boot_id()
            here = sum(
                one.cpu_seconds
                for one in passes
                if one.host == self.host or (kernel and self.hellos[one.rank].boot_id == kernel)
            )
            region.foreign_cpu_seconds = max(0.0, region.foreign_cpu_seconds - here)
        region.client_fields = {
            "client_hosts": ";".join(self.client_hosts),
            "client_launch": self.launch,
            "client_seconds": ";".join(f"{one.seconds:.6f}" for one in passes),
            "client_device_read_bytes": ";".join(
                "" if one.device_read_bytes is None else str(one.device_read_bytes)
                for one in passes
            ),
        }


def _task_for(task, share, visible: Path, token: str, host: str):
    """A client's task: the point's, with its share and the visibility token."""
    return replace(task, share=share, visible=visible, token=token, coordinator_host=host)


def new_region(device: str | None) -> Region:
    return Region(device, work=IN_READERS)
