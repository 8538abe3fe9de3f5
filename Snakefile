"""Storing and reading lots of images in Python: PNG, LMDB, HDF5 and npy, timed.

Table of contents: the config and its validation, the shared paths and helpers
(rules/common.smk), the stages (data, benchmark, aggregation and figures) and the targets.
`snakemake --report report.html` after a run gathers every figure and table in one page.
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"


validate_config(config, SCHEMA)
announce_plan()


report: "workflow/report/workflow.rst"


include: "workflow/rules/data.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.aggregate.output,
        expand(rules.html_page.output.page, page=REPORT_PAGES),
        figure_files(),
