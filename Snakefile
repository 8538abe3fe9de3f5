"""Storing and reading lots of images in Python: PNG, LMDB, HDF5 and npy, timed."""

import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

PACKAGE_DIR = Path(workflow.basedir) / "workflow" / "imgbench"
sys.path.insert(0, str(PACKAGE_DIR.parent))

from imgbench import job_resources, plan
from imgbench.config import validate_config


configfile: "config.yaml"


validate_config(config, PACKAGE_DIR.parent / "schemas" / "config.schema.yaml")
# Timed jobs take one timing_slot each: one at a time unless --resources says otherwise.
# Set here as well as in profiles/default because Snakemake passes no --resources to the
# Snakemake running inside a Slurm job, which runs a store and its reads (a group job).
if "timing_slot" not in workflow.global_resources:
    workflow.register_resource("timing_slot", 1)
for note in plan.excluded_points(config):
    print(f"Note: {note}", file=sys.stderr)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.aggregate.output,
        rules.plot.output,
