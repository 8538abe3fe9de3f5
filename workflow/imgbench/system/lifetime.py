"""Child processes that cannot outlive the process that forked them.

A job forks helpers: the guard's child that runs the job (``scriptlog.run_guarded``), the
memory watcher (``memory.AnonWatch``) and the reader processes of a read
(``readers.read_in_workers``). When the process that forked one dies by a signal it cannot
catch (SIGKILL from the out-of-memory killer, ``kill -9``, a batch system's hard kill),
nobody stops its children: they are reparented to init and keep running, a watcher
waking every 20 ms for ever, disturbing every later measurement on the machine.

Every fork of the package therefore goes through this module: the child asks the kernel
for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), then checks that
its parent is still the process that forked it (it may have died between the fork and
the ``prctl``, and the signal is then never sent). Loops in a child that wait for the
parent (the watcher's sampling, a reader waiting to be released) also test
``parent_alive`` and end by themselves.

The kernel sends the signal when the *thread* that forked the child ends, so fork from a
thread that lives as long as the parent process (the package forks only from the main
thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_GET_PDEATHSIG = 2

_libc = None


def _prctl(option: int, *args) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    padded = [*args, 0, 0, 0, 0][:4]
    return _libc.prctl(option, *padded)


def supported() -> bool:
    """Whether this kernel has a parent-death signal (Linux)."""
    return sys.platform.startswith("linux")


def die_with_parent(parent_pid: int) -> None:
    """In a child just forked from ``parent_pid``: be killed (SIGKILL) when the parent
    dies, and end now if it already has."""
    if supported() and _prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(error)}")
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)


def death_signal() -> int:
    """The parent-death signal set for this process (0: none)."""
    if not supported():
        return 0
    value = ctypes.c_int(0)
    _prctl(PR_GET_PDEATHSIG, ctypes.byref(value))
    return value.value


def parent_alive(parent_pid: int) -> bool:
    """Whether the process that forked this one is still its parent (a dead parent's
    children are reparented to init or to a subreaper)."""
    return os.getppid() == parent_pid


def fork() -> int:
    """``os.fork()`` for a child that dies with this process: 0 in the child (already
    bound), the child's pid in the parent."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        die_with_parent(parent)
    return pid


def _run_bound(parent_pid: int, target: Callable, *args, **kwargs) -> None:
    die_with_parent(parent_pid)
    target(*args, **kwargs)


def process(context, target: Callable, args: tuple = (), **kwargs):
    """A ``multiprocessing`` process of ``context`` (the fork context) whose ``target``
    runs only once the child is bound to this process (see ``die_with_parent``)."""
    return context.Process(target=_run_bound, args=(os.getpid(), target, *args), **kwargs)
