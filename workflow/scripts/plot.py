"""Snakemake adapter: statistics and disk usage -> one figure (results/plots/), in every
configured format."""

from pathlib import Path

import pandas as pd

from imgbench.jobs import scriptlog
from imgbench.report import plotting

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
stats = pd.read_csv(smk.input.stats, keep_default_na=False, na_values=[""])
disk = pd.read_csv(smk.input.disk)
written = plotting.plot_all(
    stats,
    disk,
    Path(smk.output.figure).parent,
    stems=[smk.wildcards.figure],
    formats=smk.params.formats,
    dpi=smk.params.dpi,
    spread=smk.params.spread,
)
missing = sorted({smk.output.figure, *smk.output.other_formats} - set(map(str, written)))
if missing:
    raise RuntimeError(f"plotting did not write {missing}")
logger.info("wrote %s", ", ".join(map(str, written)))
