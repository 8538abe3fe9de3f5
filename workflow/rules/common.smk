# Shared paths, imports and helpers of the workflow's rules.

import os
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

# The workflow's Python package, imgbench, lives beside the rules. The Snakemake process
# imports it from here, and so does every job's script (through PYTHONPATH, which the
# scripts inherit; a Slurm job reads this file again on its node). Scripts patch nothing.
WORKFLOW_DIR = Path(workflow.basedir) / "workflow"
PACKAGE_DIR = WORKFLOW_DIR / "imgbench"
SCRIPTS_DIR = WORKFLOW_DIR / "scripts"
sys.path.insert(0, str(WORKFLOW_DIR))
# Set for the jobs, not read from the user: nothing to assert with `envvars`.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        [
            str(WORKFLOW_DIR),
            *filter(None, os.getenv("PYTHONPATH", "").split(os.pathsep)),
        ]
    )
)

from imgbench.experiment import estimate, plan, rigor, vocabulary
from imgbench.harness import space, storeref
from imgbench.jobs import job_resources, sources
from imgbench.report import figures
from imgbench.experiment.config import validate_config

SCHEMA = WORKFLOW_DIR / "schemas" / "config.schema.yaml"

# Path roots of everything the run writes.
RESULTS_DIR = Path("results")
DATA_DIR = RESULTS_DIR / "data"
ROWS_DIR = RESULTS_DIR / "rows"
BENCHMARKS_DIR = RESULTS_DIR / "benchmarks"
PLOTS_DIR = RESULTS_DIR / "plots"
LOGS_DIR = Path("logs")

# Markdown tables of the run, shown in the report as HTML pages: category and caption.
REPORT_PAGES = {
    "summary": ("Summary", "summary.rst"),
    "disk_usage": ("Disk usage", "disk_usage.rst"),
}


def figure_formats():
    """The configured figure formats, PNG first: the report shows each figure in the
    first, so PNG where the config makes it."""
    return sorted(config["plot"]["formats"], key=lambda ext: ext != "png")


def figure_files():
    """Every figure the config asks for, in every format."""
    return expand(
        PLOTS_DIR / "{figure}.{ext}", figure=figures.stems(config), ext=figure_formats()
    )


def script_sources(script):
    """The package modules ``script`` (in workflow/scripts/) imports, at any depth: the
    code a rule declares as input, so editing a module reruns the jobs that run it."""
    return [
        workflow.source_path(f"../{path.relative_to(WORKFLOW_DIR)}")
        for path in sources.closure([SCRIPTS_DIR / script], PACKAGE_DIR)
    ]


def announce_plan():
    """Register the timing slot and print the points the config skips."""
    # Timed jobs take one timing_slot each: one at a time unless --resources says
    # otherwise. Set here as well as in profiles/default because Snakemake passes no
    # --resources to the Snakemake running inside a Slurm job, which runs a store and its
    # reads (a group job).
    if "timing_slot" not in workflow.global_resources:
        workflow.register_resource("timing_slot", 1)
    for note in plan.excluded_points(config):
        print(f"Note: {note}", file=sys.stderr)


def end_reselection_timers():
    """Snakemake's job rate limiter starts a threading.Timer per scheduling round; a
    pending one keeps the finished process alive until it fires. End them."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def owned_stores(root):
    """The store directories the current configuration's store jobs write."""
    return [
        root / str(STORE.relative_to(STORE_DIR)).format(**job)
        for job in plan.store_jobs(config)
    ]


def sweep_orphan_stores():
    """Remove the pipeline's stores under store_dir that no current job owns: stores of
    points no longer in the config, and partial stores of killed jobs."""
    try:
        root = storeref.resolve(config["store_dir"])
    except storeref.StoreLocationError as error:
        print(f"Note: orphaned stores not looked for: {error}", file=sys.stderr)
        return []
    removed = storeref.sweep(
        root, owned_stores(root), keep_complete=config["keep_stores"]
    )
    for store in removed:
        print(f"Removed the orphaned store {store}", file=sys.stderr)
    return removed


def check_disk_space():
    """Print the run's peak disk need against the free space; stop when it cannot fit."""
    try:
        root = storeref.resolve(config["store_dir"])
    except storeref.StoreLocationError:
        return  # resolved on the node that runs each store job, and checked there
    options = plan.VariantOptions(config)
    label, need = space.largest_store(
        STORE_JOBS, lambda job: options(SimpleNamespace(**job))
    )
    missing = [
        size
        for size in config["image_sizes"]
        if not Path(str(POOL).format(image_size=size)).exists()
    ]
    # An image folder is first written per size as it is (folder_<size>px_images.npy),
    # then copied into the pool: twice the pool's bytes.
    copies = 1 if FOLDER is None else 2
    data_need = copies * sum(plan.pool_bytes(config, size) for size in missing)
    try:
        line = space.start_check(root, label, need, data_need, DATA_DIR)
    except space.StoreSpaceError as error:
        print(f"Error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(line, file=sys.stderr)


def announce_estimate():
    """Print the run's rigor, its timed operations and an estimate of its wall time here
    (``estimate``: reference speeds scaled by a 30 ms PNG calibration)."""
    print(rigor.describe(config), file=sys.stderr)
    print(estimate.announcement(config), file=sys.stderr)


onstart:
    sweep_orphan_stores()
    check_disk_space()
    announce_estimate()


onsuccess:
    end_reselection_timers()


onerror:
    end_reselection_timers()


def caption_text(name):
    """The text of workflow/report/<name>: the caption of a page or a figure, which
    caption.rst shows through the job's params.caption."""
    return (WORKFLOW_DIR / "report" / name).read_text()


def page_caption(wildcards):
    """Rule callable: the caption of the page an html_page job renders."""
    return caption_text(REPORT_PAGES[wildcards.page][1])


def figure_caption(wildcards):
    """Rule callable: the caption of the figure a plot job draws (figures.Figure.caption)."""
    return caption_text(figures.ReportField("caption")(wildcards))
