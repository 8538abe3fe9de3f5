"""Snakemake adapter: download the CIFAR-10 python archive and verify its md5."""

from pathlib import Path

from imgbench.data import cifar
from imgbench.jobs import scriptlog

logger = scriptlog.setup(snakemake.log[0])  # noqa: F821
logger.info("downloading %s", snakemake.params.url)  # noqa: F821
cifar.download(snakemake.params.url, Path(snakemake.output.archive), snakemake.params.md5)  # noqa: F821
logger.info("wrote %s", snakemake.output.archive)  # noqa: F821
