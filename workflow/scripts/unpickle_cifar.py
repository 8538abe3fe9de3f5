"""Snakemake adapter: CIFAR-10 training batches -> images (N, 32, 32, 3) and labels as .npy."""

from pathlib import Path

from imgbench.data import cifar
from imgbench.jobs import scriptlog
from imgbench.system.atomic import save_npy

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
archive = Path(smk.input.archive)
cifar.check_md5(archive, smk.params.md5)
images, labels = cifar.load_training_set(archive)
logger.info(
    "loaded %d images %s and %d labels from %s", len(images), images.shape[1:], len(labels), archive
)
save_npy(images, smk.output.images)
save_npy(labels, smk.output.labels)
