"""The tests' own processes: found by following a process tree or a session, never by
scanning the machine for a name (a user's run, another test or a leftover process on the
same machine must not make a test fail)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from 3 (state) on; comm may hold spaces


def identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time in ticks): a pid reused by a later process is another process."""
    fields = _stat_fields(pid)
    return None if fields is None else (pid, fields[19])


def running(process: tuple[int, str]) -> bool:
    """Whether the process ``identity`` named is still running (a zombie has ended)."""
    fields = _stat_fields(process[0])
    return fields is not None and fields[0] not in ("Z", "X") and fields[19] == process[1]


def children(pid: int) -> list[int]:
    found = []
    try:
        threads = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for thread in threads:
        try:
            found.extend(int(child) for child in (thread / "children").read_text().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in its tree, children first."""
    found, pending = [], children(pid)
    while pending:
        current = pending.pop(0)
        found.append(current)
        pending.extend(children(current))
    return found


def in_session(session_id: int) -> dict[int, tuple[int, bytes]]:
    """The processes of session ``session_id`` (e.g. a Popen started with
    ``start_new_session=True``: its pid), by pid: (parent pid, command line)."""
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] in ("Z", "X") or int(fields[3]) != session_id:
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), command)
    return found


def job_processes(session_id: int, script: bytes) -> tuple[int, list[int]] | None:
    """A job of the session whose command line names ``script`` (e.g. ``b".store.py"``):
    its top process (the one Snakemake started, the guard) and the processes below it.
    None when no such job runs."""
    session = in_session(session_id)
    jobs = {pid: parent for pid, (parent, command) in session.items() if script in command}
    tops = [pid for pid, parent in jobs.items() if parent not in jobs]
    if not tops:
        return None
    assert len(tops) == 1, f"more than one {script!r} job in the session: {tops}"
    return tops[0], descendants(tops[0])


def wait_until_ended(processes: list[tuple[int, str]], timeout_s: float) -> list[int]:
    """Wait up to ``timeout_s`` for every process to end; returns the pids still running."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = [process[0] for process in processes if running(process)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def start_stranger() -> int:
    """A ``while True: pass`` process that is not this process's descendant: a shell starts
    it in the background and exits, so it is reparented away from us. The caller kills it
    (SIGKILL) when done."""
    launched = subprocess.run(
        ["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(launched.stdout)
