"""Logging for the Snakemake scripts: to the rule's log file and to stderr.

A failure reaches the console as one sentence (the cause, the config key, the fix, where
``describe`` knows one); the log file keeps that sentence and the traceback. SIGTERM and
SIGINT become an ``Interrupted`` exception, so a job's cleanup runs and its log says which
signal ended it; a fatal signal (SIGBUS from a memory-mapped file on a full disk, SIGSEGV)
leaves faulthandler's report in the log.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import sys
import traceback as tb
from collections.abc import Callable
from pathlib import Path

from imgbench.system import lifetime


class Interrupted(BaseException):
    """The job was asked to stop by a signal (SIGTERM from Snakemake or Slurm, SIGINT)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"the job was interrupted by {signal.Signals(signum).name}")


def _interrupt(signum, frame):
    # Once: a second Ctrl-C (or SIGTERM after SIGINT) must not break the cleanup it started.
    for other in (signal.SIGTERM, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def run_guarded(main: Callable[[], None], on_signal: Callable[[int], str]) -> None:
    """Run ``main`` in a forked child and exit with its status. A child killed by a signal
    it cannot turn into an exception (SIGBUS when a memory-mapped file finds no space on a
    full disk, SIGSEGV, the OOM killer's SIGKILL) ends no sentence of its own: this parent
    logs ``on_signal(signum)`` for it, once. SIGTERM and SIGINT are passed on to the child,
    whose cleanup then runs."""
    logger = logging.getLogger("imgbench")
    child = lifetime.fork()  # dies with this parent, even by SIGKILL
    if child == 0:  # pragma: no cover (runs in the child; its exit status is checked)
        code = 0
        try:
            main()
        except SystemExit as error:
            code = error.code if isinstance(error.code, int) else 1
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        finally:
            logging.shutdown()
        os._exit(code)

    def forward(signum, frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        logger.error("%s", on_signal(os.WTERMSIG(status)))
        sys.exit(1)
    sys.exit(os.WEXITSTATUS(status))


def setup(
    log_path: str | Path, describe: Callable[[BaseException], str | None] | None = None
) -> logging.Logger:
    """Send log records to ``log_path`` and to stderr; an uncaught exception is logged as
    one sentence (``describe(error)`` when it returns one, else "Type: message") with the
    traceback in the log file only."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    log_path.write_text("")  # a fresh log; then everyone appends (O_APPEND): the records of
    # this process, of a forked child and faulthandler's report never overwrite each other
    log_file = logging.FileHandler(log_path, mode="a")
    console = logging.StreamHandler(sys.stderr)
    for handler in (log_file, console):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    logger = logging.getLogger("imgbench")
    fault_log = open(log_path, "a")  # noqa: SIM115 (open for the process's whole life)
    faulthandler.enable(file=fault_log)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupt)

    def log_uncaught(kind, value, traceback):
        sentence = (describe(value) if describe else None) or f"{kind.__name__}: {value}"
        logger.error("%s", sentence)
        log_file.stream.write("".join(tb.format_exception(kind, value, traceback)))
        log_file.flush()

    sys.excepthook = log_uncaught
    return logger
