"""Integration: the pipeline on a tiny config through a real single-node Slurm.

The module fixture brings Slurm up with .ci/slurm/start_slurm.sh (Debian packages,
slurmdbd with MariaDB so that `sacct` works) and stops it afterwards if it started it.
Without root or apt the test is skipped with the reason; with CI=true that is a failure.
The run uses profiles/slurm unchanged; `sacct` then shows that every job of a non-local
rule ran as part of a Slurm job of this run and completed, that each store was read and
removed inside the Slurm job that wrote it, and that no two timed Slurm jobs overlapped.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from ci import unavailable
from workflow_runs import REPO, cifar_workflow, snakemake, snakemake_command

from imgbench.results.busy import overlapping_timings

START = REPO / ".ci" / "slurm" / "start_slurm.sh"
STOP = REPO / ".ci" / "slurm" / "stop_slurm.sh"
ACCOUNT = "imgbench"
PARTITION = "debug"
METHODS = ["png", "lmdb", "hdf5", "npy"]
CUTOFFS = [1, 12]
CACHES = ["cold", "warm"]
# Rules that run in the Snakemake process itself (localrules), never as Slurm jobs.
LOCAL_RULES = {"download_cifar", "aggregate", "plot", "all"}
GROUP = "bench"

pytestmark = pytest.mark.slurm


def report(request, message: str) -> None:
    """Print past pytest's output capture (durations and sacct excerpts belong in CI logs)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(message)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(message)


def slurm_is_up() -> bool:
    if shutil.which("scontrol") is None:
        return False
    result = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    return result.returncode == 0 and "UP" in result.stdout


@pytest.fixture(scope="module")
def slurm(request):
    """A running single-node Slurm with accounting; stopped afterwards if started here."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        unavailable("needs root to install and start Slurm (.ci/slurm/start_slurm.sh)")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        unavailable("Slurm is not installed and there is no apt-get to install it")
    already_up = slurm_is_up()
    started = time.monotonic()
    try:
        result = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        result = None
    if result is None or result.returncode != 0:
        if not already_up:  # stop whatever part of it did start
            subprocess.run(["bash", str(STOP)], capture_output=True, timeout=300)
        if result is None:
            unavailable(f"{START.name} did not finish within 30 minutes")
        unavailable(f"{START.name} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    report(
        request,
        f"\n[slurm] {START.name}: {time.monotonic() - started:.1f} s "
        f"({'already running' if already_up else 'installed/started'})",
    )
    yield {"SBATCH_ACCOUNT": ACCOUNT, "SBATCH_PARTITION": PARTITION}
    if not already_up:
        stop = subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=300)
        report(request, f"[slurm] {STOP.name}: exit {stop.returncode}")


def sacct(*args: str) -> list[dict[str, str]]:
    fields = ["JobID", "JobName", "Comment", "State", "ExitCode", "NodeList", "Start", "End"]
    command = ["sacct", "--parsable2", "--noheader", f"--format={','.join(fields)}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [dict(zip(fields, line.split("|"), strict=True)) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def slurm_run(slurm, request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm-workflow")
    # Node-local scratch, expanded inside each job (TMPDIR is Snakemake's tmpdir resource).
    scratch_name = f"imgbench-slurm-test-{uuid.uuid4().hex[:8]}"
    cifar_workflow(
        workdir,
        n_images=12,
        cutoffs=CUTOFFS,
        methods=METHODS,
        store_dir=f"$TMPDIR/{scratch_name}",
        repeats=1,
        inner_repeats=1,
        read_cache=CACHES,
        read_patterns=["whole"],
    )
    # The one node is this machine, and the jobs inherit this environment (sbatch
    # --export=ALL), so their $TMPDIR is this process's temporary directory.
    scratch = Path(tempfile.gettempdir()) / scratch_name
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))

    # The profile as a user runs it; the only additions poll Slurm every few seconds
    # instead of 40 s (fine for a private test cluster) and keep the Slurm logs.
    since = (datetime.datetime.now() - datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    started = time.monotonic()
    result = snakemake(
        workdir,
        "--profile",
        "profiles/slurm",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        cores=None,
        timeout=1500,
        env={**os.environ, **slurm},
    )
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    found = re.search(r"SLURM run ID: (\S+)", output)
    assert found, f"no SLURM run ID in the Snakemake output:\n{output[-4000:]}"
    run_id = found.group(1)
    jobs = sacct("-X", "-S", since, "--name", run_id)
    steps = sacct("-S", since, "--name", run_id)
    report(
        request,
        f"[slurm] snakemake --profile profiles/slurm: {seconds:.1f} s, "
        f"{len(jobs)} Slurm jobs (run {run_id})",
    )
    for job in jobs:
        report(
            request,
            f"[slurm]   {job['JobID']:>6} {job['State']:<10} {job['NodeList']:<8} "
            f"{job['Start']} .. {job['End']}  {job['Comment']}",
        )
    return workdir, output, jobs, steps, scratch


def rule_of(job: dict[str, str]) -> str:
    """The rule (or group) named in the --comment the plugin sets: rule_<name>[_wildcards_..]."""
    comment = job["Comment"]
    assert comment.startswith("rule_"), job
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def test_every_non_local_job_ran_as_a_completed_slurm_job(slurm_run):
    workdir, output, jobs, steps, _ = slurm_run
    assert jobs, "sacct shows no Slurm job of this run"
    assert all(job["State"] == "COMPLETED" and job["ExitCode"] == "0:0" for job in jobs), jobs

    # The small stores of one method (1 and 12 images) share a store and a read job
    # (small_store_bytes): one group job per method.
    stores = len(METHODS)
    rules = Counter(rule_of(job) for job in jobs)
    groups = [name for name in rules if name.startswith(f"{GROUP}_")]
    assert len(groups) == 1, rules
    # Data preparation as one Slurm job each; a store job and its read job as one.
    assert rules == Counter(unpickle_cifar=1, pool=1, **{groups[0]: stores}), rules
    assert not LOCAL_RULES & {name for name in rules}
    # Each Slurm job ran its rules as job steps (srun), all completed: one step for a
    # plain job; the store and its read job for a group job.
    numbered = Counter()
    for step in steps:
        job_id, _, step_id = step["JobID"].partition(".")
        if step_id.isdigit():
            assert step["State"] == "COMPLETED", step
            numbered[job_id] += 1
    per_job = {job["JobID"]: numbered[job["JobID"]] for job in jobs}
    expected = {
        job["JobID"]: 1 if rule_of(job) in ("unpickle_cifar", "pool") else 2 for job in jobs
    }
    assert per_job == expected
    # Snakemake itself saw every job finish (timing jobs, 2 data jobs, local ones).
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output)


def test_outputs_and_rows(slurm_run):
    workdir, _, _, _, _ = slurm_run
    results = workdir / "results"
    timings = pd.read_csv(results / "timings.csv", keep_default_na=False, na_values=[""])
    expected = Counter()
    for method in METHODS:
        for cutoff in CUTOFFS:
            expected[(method, "store", cutoff, "n/a")] += 1
            for cache in CACHES:
                expected[(method, "read", cutoff, cache)] += 1
    got = Counter(
        zip(
            timings["method"],
            timings["operation"],
            timings["cutoff"],
            timings["cache"],
            strict=True,
        )
    )
    assert got == expected
    assert (timings["seconds"] > 0).all()
    for name in ("summary.md", "disk_usage.csv", "timings_stats.csv"):
        assert (results / name).stat().st_size > 0
    assert (results / "plots" / "store_time_linear_32px.png").is_file()


def test_each_store_was_read_and_removed_in_its_own_slurm_job(slurm_run):
    workdir, _, jobs, _, scratch = slurm_run
    results = workdir / "results"
    # Each row's provenance (its .env.json beside it) names the Slurm job it ran in.
    rows = []
    for env_path in sorted((results / "rows").rglob("*.env.json")):
        job_rows = pd.read_csv(env_path.with_name(env_path.name.replace(".env.json", ".csv")))
        record = json.loads(env_path.read_text())
        assert record["store_fs_type"], record
        for row in job_rows.to_dict("records"):  # a read job: a row per read (inner_repeats 1)
            rows.append({**row, "slurm_job_id": record["slurm_job_id"]})
    rows = pd.DataFrame(rows)
    assert len(rows) == len(METHODS) * len(CUTOFFS) * (1 + len(CACHES))
    group_jobs = {job["JobID"]: job for job in jobs if rule_of(job).startswith(f"{GROUP}_")}
    assert set(rows["slurm_job_id"]) == set(group_jobs)
    for job_id, in_job in rows.groupby("slurm_job_id"):
        # The job's stores and their reads: one method and repeat, each cutoff, on the
        # job's node.
        assert len({*zip(in_job["method"], in_job["repeat"], strict=True)}) == 1
        assert set(in_job["cutoff"]) == set(CUTOFFS)
        stores = len(CUTOFFS)
        assert Counter(in_job["operation"]) == Counter(store=stores, read=stores * len(CACHES))
        assert {host.split(".")[0] for host in in_job["host"]} == {group_jobs[job_id]["NodeList"]}
    # The stores went to the expanded node-local path and were removed after their reads.
    store_log = workdir / "logs" / "store" / "png" / "default" / "32px" / "1+12" / "repeat1.log"
    for cutoff in CUTOFFS:
        assert f"{scratch}/png/default/32px/{cutoff}/repeat1" in store_log.read_text()
    assert "$TMPDIR" not in store_log.read_text()
    read_logs = list((workdir / "logs" / "read").rglob("*.log"))
    assert len(read_logs) == len(METHODS)
    assert all(f"INFO removed {scratch}/" in log.read_text() for log in read_logs)
    assert scratch.is_dir()
    assert not any(path.is_file() for path in scratch.rglob("*"))


def test_timed_work_never_overlapped(slurm_run):
    workdir, _, jobs, _, _ = slurm_run
    timings = pd.read_csv(
        workdir / "results" / "timings.csv", keep_default_na=False, na_values=[""]
    )
    # Inside each Slurm job the store and its reads ran one after another ...
    assert overlapping_timings(timings) == []
    assert "No two timed operations overlapped" in (workdir / "results" / "summary.md").read_text()
    # ... and Snakemake never had two timed Slurm jobs running at once (timing_slot=1).
    timed = sorted(
        (job for job in jobs if rule_of(job).startswith(f"{GROUP}_")), key=lambda job: job["Start"]
    )
    for before, after in zip(timed, timed[1:], strict=False):
        assert after["Start"] >= before["End"], (before, after)


# ---- many clients on two nodes (issue 26) -------------------------------------------------

CLIENT_METHODS = ["npy", "png"]
CLIENT_CUTOFF = 600
TWO_BY_TWO = {"nodes": 2, "per_node": 2}
CLIENTS_READY = re.compile(r"client (\d+) on (\S+) pid (\d+)")


def slurm_snakemake(workdir: Path, slurm: dict, *, check: bool = True):
    """The workflow through profiles/slurm, as a user runs it (polling every 2 s)."""
    return snakemake(
        workdir,
        "--profile",
        "profiles/slurm",
        "--slurm-init-seconds-before-status-checks",
        "2",
        cores=None,
        check=check,
        timeout=1500,
        env={**os.environ, **slurm},
    )


def cluster_nodes() -> set[str]:
    listed = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True).stdout
    names = subprocess.run(
        ["scontrol", "show", "hostnames", listed.strip()], capture_output=True, text=True
    ).stdout
    return set(names.split())


def clients_config(**changes) -> dict:
    config = dict(
        n_images=CLIENT_CUTOFF,
        cutoffs=[CLIENT_CUTOFF],
        methods=CLIENT_METHODS,
        repeats=1,
        inner_repeats=2,
        read_cache=["cold"],
        read_patterns=["shuffled"],
        readahead=["on"],
        batch_size=16,
        clients=[TWO_BY_TWO],
    )
    return config | changes


@pytest.fixture(scope="module")
def clients_run(slurm, request, tmp_path_factory):
    """npy and png read by 2 x 2 clients over the two nodes, through profiles/slurm."""
    workdir = tmp_path_factory.mktemp("slurm-clients")
    cifar_workflow(workdir, **clients_config())
    started = time.monotonic()
    slurm_snakemake(workdir, slurm)
    report(request, f"[slurm] 2 x 2 clients, npy and png: {time.monotonic() - started:.1f} s")
    return workdir


def test_clients_on_two_nodes_read_and_verify_every_share(clients_run):
    workdir = clients_run
    timings = pd.read_csv(
        workdir / "results" / "timings.csv", keep_default_na=False, na_values=[""]
    )
    many = timings[(timings["operation"] == "read") & (timings["clients"] > 0)]
    assert sorted(set(many["method"])) == sorted(CLIENT_METHODS)
    nodes = cluster_nodes()
    for row in many.to_dict("records"):
        assert (row["nodes"], row["clients"], row["readers"]) == (2, 4, 1)
        hosts = row["client_hosts"].split(";")
        assert len(set(hosts)) == 2 and set(hosts) <= nodes, (hosts, nodes)
        assert row["client_launch"] == "srun"
        seconds = [float(value) for value in row["client_seconds"].split(";")]
        assert len(seconds) == 4 and max(seconds) <= row["seconds"]
        assert len(str(row["client_device_read_bytes"]).split(";")) == 4
        assert row["images_read"] == CLIENT_CUTOFF  # every client's share, together
        assert row["images_per_s_per_client"] == pytest.approx(row["images_per_s"] / 4)
    for method in CLIENT_METHODS:
        log = workdir / "logs" / "read" / method / "default" / "32px"
        text = (log / str(CLIENT_CUTOFF) / "repeat1.log").read_text()
        ready = CLIENTS_READY.findall(text.split("srun clients ready", 1)[1].splitlines()[0])
        assert sorted(int(rank) for rank, _, _ in ready) == [0, 1, 2, 3]
        assert len({host for _, host, _ in ready}) == 2
        # the read job's line for the point: read, then checked by every client (verified)
        assert re.search(r"2 x 2 clients on \S+;\S+, readahead on: 600 images .* verified", text)
    # the figure and the summary's rows of the many-clients reads
    results = workdir / "results"
    assert (results / "plots" / "clients_shuffled_cold_32px.png").stat().st_size > 0
    summary_text = (results / "summary.md").read_text()
    assert "## Many clients" in summary_text
    assert "shuffled, 2x2 clients, cold" in summary_text  # the format table's row
    assert all(host in summary_text for host in set(many["client_hosts"].str.split(";").sum()))


def test_a_node_local_store_dir_is_refused_for_clients_on_two_nodes(slurm, tmp_path, request):
    store_dir = Path("/dev/shm") / f"imgbench-clients-{uuid.uuid4().hex[:8]}"
    request.addfinalizer(lambda: shutil.rmtree(store_dir, ignore_errors=True))
    cifar_workflow(
        tmp_path,
        **clients_config(
            methods=["npy"],
            n_images=50,
            cutoffs=[50],
            clients=[{"nodes": 2, "per_node": 1}],
            store_dir=str(store_dir),
        ),
    )
    result = slurm_snakemake(tmp_path, slurm, check=False)
    assert result.returncode != 0
    log = tmp_path / "logs" / "read" / "npy" / "default" / "32px" / "50" / "repeat1.log"
    text = log.read_text()
    assert f"the store {store_dir}/npy/default/32px/50/repeat1 is on tmpfs" in text
    assert "which no other node sees: set store_dir to a file system every node mounts" in text
    assert not list((tmp_path / "results" / "rows").rglob("read/**/*.csv"))


def test_a_client_killed_on_the_other_node_fails_the_point_and_a_rerun_measures_it(slurm, tmp_path):
    cutoff = 4000
    cifar_workflow(
        tmp_path,
        **clients_config(methods=["png"], n_images=cutoff, cutoffs=[cutoff], inner_repeats=5),
    )
    command = snakemake_command(
        "--profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "2", cores=None
    )
    run = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, **slurm},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log = tmp_path / "logs" / "read" / "png" / "default" / "32px" / str(cutoff) / "repeat1.log"
    try:
        deadline = time.monotonic() + 900
        ready = []
        while not ready and time.monotonic() < deadline and run.poll() is None:
            text = log.read_text() if log.is_file() else ""
            if "srun clients ready" in text:
                line = text.split("srun clients ready", 1)[1].splitlines()[0]
                ready = CLIENTS_READY.findall(line)
            time.sleep(0.05)
        assert ready, "the clients never started"
        head = ready[0][1]  # client 0 runs on the job's first node, beside the read job
        rank, host, pid = next(client for client in ready if client[1] != head)
        os.kill(int(pid), signal.SIGKILL)
        output, _ = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode != 0, output[-3000:]
    text = log.read_text()
    assert f"png client {rank} of 4 (host {host}, pid {pid}) died without reporting" in text
    row = tmp_path / "results" / "rows" / "read" / "png" / "default" / "32px" / f"{cutoff}"
    assert not (row / "repeat1.csv").exists()  # no partial row
    # A rerun measures the point again, with every client.
    slurm_snakemake(tmp_path, slurm)
    timings = pd.read_csv(tmp_path / "results" / "timings.csv")
    many = timings[(timings["operation"] == "read") & (timings["clients"] == 4)]
    assert len(many) >= 1 and (many["images_read"] == cutoff).all()
