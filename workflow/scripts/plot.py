"""Snakemake adapter: statistics and disk usage -> figures in results/plots/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from imgbench import plotting, scriptlog  # noqa: E402

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
stats = pd.read_csv(smk.input.stats, keep_default_na=False, na_values=[""])
disk = pd.read_csv(smk.input.disk)
written = plotting.plot_all(
    stats,
    disk,
    Path(smk.output.plots[0]).parent,
    formats=smk.params.formats,
    dpi=smk.params.dpi,
    spread=smk.params.spread,
)
missing = sorted(set(map(str, smk.output.plots)) - set(map(str, written)))
if missing:
    raise RuntimeError(f"plotting did not write {missing}")
logger.info("wrote %d figures", len(written))
