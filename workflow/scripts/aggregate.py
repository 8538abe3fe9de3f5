"""Snakemake adapter: all rows -> timings.csv, statistics, disk usage, summary, environment."""

import json

from imgbench.jobs import scriptlog
from imgbench.results import busy as busy_rule
from imgbench.results import footprint, load, points, summary
from imgbench.system.atomic import write_text

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
rows = load.load_rows(smk.input.rows)
busy = busy_rule.busy_thresholds(smk.params.busy)
stats = points.summarise(rows, busy=busy)
disk = footprint.disk_usage_table(rows)
memory = footprint.memory_table(rows, load.load_benchmarks(smk.input.benchmarks))
environments = load.load_environments(smk.input.envs)
write_text(rows.to_csv(index=False), smk.output.timings)
write_text(stats.to_csv(index=False), smk.output.stats)
write_text(disk.to_csv(index=False), smk.output.disk_csv)
write_text(memory.to_csv(index=False), smk.output.memory)
write_text(footprint.disk_usage_markdown(disk), smk.output.disk_md)
write_text(json.dumps(environments, indent=2, sort_keys=True) + "\n", smk.output.environment)
write_text(
    summary.summary_markdown(
        rows, stats, disk, environments, smk.params.interval_threshold, busy=busy, memory=memory
    ),
    smk.output.summary,
)
logger.info("aggregated %d measurements into %d points", len(rows), len(stats))
