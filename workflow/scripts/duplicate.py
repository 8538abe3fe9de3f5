"""Snakemake adapter: tile the training set to n_images, as the article does."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from imgbench import cifar, scriptlog  # noqa: E402
from imgbench.atomic import save_npy  # noqa: E402

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
images = np.load(smk.input.images, allow_pickle=False)
labels = np.load(smk.input.labels, allow_pickle=False)
images, labels = cifar.duplicate(images, labels, smk.params.n_images)
logger.info("tiled %d source images to %d", len(np.load(smk.input.labels)), len(images))
save_npy(images, smk.output.images)
save_npy(labels, smk.output.labels)
