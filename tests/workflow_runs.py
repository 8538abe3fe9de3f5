"""The workflow in a temporary copy, and Snakemake run there: what every end-to-end test
(tests/workflow/) builds on.

- ``copy_workflow``: the Snakefile, config.yaml, workflow/, profiles/ and envs/ copied into
  a directory, config.yaml updated with the test's keys, extra files written into the copy.
- ``cifar_workflow``, ``folder_workflow``: a copy on a generated CIFAR-10 archive, on a
  folder of real photographs, made in it (``tiny_cifar``: the archive and the config's
  ``dataset`` for it; ``cifar_dataset``, ``folder_dataset``: the ``dataset`` of an
  archive, of a folder).
- ``snakemake``: Snakemake run in the copy (output captured, a timeout); on failure the
  message holds the command, the tail of Snakemake's output and of the failed jobs' logs.
  ``start_snakemake``: started in a session of its own, for tests that signal it.
- ``planned_jobs``, ``overlay``, ``write_config``: dry-run job lists, config overlays,
  config edits.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from cifar_fixtures import make_archive

from imgbench.data import photos

REPO = Path(__file__).resolve().parents[1]
# What a copy of the workflow holds: files, then folders.
WORKFLOW_FILES = ("Snakefile", "config.yaml")
WORKFLOW_FOLDERS = ("workflow", "profiles", "envs")
# A generated archive's url: never fetched (the archive is on disk), and would not resolve.
UNREACHABLE_URL = "https://example.invalid/x.tgz"
# The training batches of the tiny archive: 15 images.
TINY_BATCHES = (4, 3, 2, 3, 3)
# How much of Snakemake's output, and of each failed job's log, a failure message shows.
OUTPUT_TAIL_CHARS = 8000
LOG_TAIL_CHARS = 3000


def copy_workflow(workdir: Path, files: dict[str, str] | None = None, **config) -> Path:
    """Copy the workflow into ``workdir`` (made if missing), write ``files`` ({path
    relative to the copy: text}) into it and update its config.yaml with ``config`` (top
    level keys replaced whole); returns ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        shutil.copy(REPO / name, workdir / name)
    for name in WORKFLOW_FOLDERS:
        shutil.copytree(REPO / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
    for relative, text in (files or {}).items():
        (workdir / relative).write_text(text)
    if config:
        write_config(workdir, **config)
    return workdir


def write_config(workdir: Path, **changes) -> None:
    """Update the copy's config.yaml with ``changes`` (top level keys replaced whole)."""
    path = Path(workdir) / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def cifar_dataset(archive: Path, md5: str) -> dict:
    """The config's ``dataset`` for an archive on disk (its url is never fetched)."""
    return {"archive": str(archive), "md5": md5, "url": UNREACHABLE_URL}


def folder_dataset(folder: Path) -> dict:
    """The config's ``dataset`` for a folder of images (no archive is ever fetched)."""
    return {"images_dir": str(folder), "url": UNREACHABLE_URL}


def tiny_cifar(
    directory: Path,
    batch_sizes: tuple[int, ...] = TINY_BATCHES,
    *,
    name: str = "tiny-cifar.tar.gz",
    **options,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """A CIFAR-10 archive ``name`` in ``directory`` with training batches of
    ``batch_sizes`` images (``options`` as for ``cifar_fixtures.make_archive``: seed,
    make); returns (the config's ``dataset`` for it, its training images, their labels)."""
    archive, md5, images, labels = make_archive(Path(directory) / name, batch_sizes, **options)
    return cifar_dataset(archive, md5), images, labels


def cifar_workflow(
    workdir: Path, *, archive: dict | None = None, files: dict[str, str] | None = None, **config
) -> tuple[np.ndarray, np.ndarray]:
    """The workflow copied into ``workdir`` (``copy_workflow`` with ``files`` and
    ``config``) on a CIFAR-10 archive generated there (``tiny_cifar`` with ``archive``'s
    keywords), its ``dataset``; returns the archive's training images and their labels."""
    dataset, images, labels = tiny_cifar(workdir, **(archive or {}))
    copy_workflow(workdir, files, dataset=dataset, **config)
    return images, labels


def folder_workflow(workdir: Path, name: str, count: int, *, seed: int, sources, **config) -> Path:
    """The workflow copied into ``workdir`` (``copy_workflow`` with ``config``) on a folder
    ``name`` of ``count`` real photographs of ``sources`` made there
    (``photos.build_photo_folder``), its ``dataset``; returns the folder."""
    folder = Path(workdir) / name
    photos.build_photo_folder(folder, count, seed=seed, sources=sources)
    copy_workflow(workdir, dataset=folder_dataset(folder), **config)
    return folder


def snakemake_command(*args: str, cores: int | None = 4) -> list[str]:
    """The command line of Snakemake run with this test's Python (``--cores`` unless
    ``cores`` is None)."""
    command = [sys.executable, "-m", "snakemake"]
    if cores is not None:
        command += ["--cores", str(cores)]
    return [*command, *args]


def snakemake(
    workdir: Path,
    *args: str,
    cores: int | None = 4,
    check: bool = True,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir`` with ``args`` (output captured as text; ``env``, if
    given, the whole environment); with ``check``, a non-zero exit fails the test with the
    command, the tail of the output and of the logs of the jobs that failed."""
    command = snakemake_command(*args, cores=cores)
    result = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(failure_message(Path(workdir), command, result))
    return result


def failure_message(workdir: Path, command: list[str], result: subprocess.CompletedProcess) -> str:
    """The command, the tail of its output, and the tail of each log Snakemake named as a
    failed job's."""
    output = result.stdout + result.stderr
    parts = [
        f"{' '.join(command)} failed (exit {result.returncode}):\n{output[-OUTPUT_TAIL_CHARS:]}"
    ]
    for log in failed_job_logs(output):
        path = workdir / log
        text = path.read_text(errors="replace") if path.is_file() else "(no such file)"
        parts.append(f"--- the end of {log} ---\n{text[-LOG_TAIL_CHARS:]}")
    return "\n".join(parts)


def failed_job_logs(output: str) -> list[str]:
    """The log files Snakemake's error report names ("log: a, b (check log file(s) for
    error details)"), each once, in order."""
    found = re.findall(r"log: (.+?) \(check log file\(s\) for error details\)", output)
    return list(dict.fromkeys(log for logs in found for log in logs.split(", ")))


def start_snakemake(workdir: Path, *, cores: int | None = 4) -> subprocess.Popen:
    """Snakemake started in ``workdir`` in a session of its own (its pid is the session's
    id, for ``processes.in_session``, and the process group a Ctrl-C is sent to), stderr
    piped as text; the caller waits for it or kills the group."""
    return subprocess.Popen(
        snakemake_command(cores=cores),
        cwd=workdir,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )


def planned_jobs(workdir: Path, *args: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run would execute."""
    output = snakemake(workdir, "--dry-run", *args).stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not match:
            continue
        wildcards = {}
        found = re.search(r"^\s+wildcards: (.+)$", block, re.MULTILINE)
        if found:
            wildcards = dict(pair.split("=", 1) for pair in found.group(1).split(", "))
        jobs.append((match.group(1), wildcards))
    return jobs


def overlay(workdir: Path, name: str, changes: dict) -> list[str]:
    """Command-line arguments that apply ``changes`` on top of config.yaml."""
    path = Path(workdir) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(changes))
    return ["--configfile", "config.yaml", str(path)]
