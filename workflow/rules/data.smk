# The images every dataset is tiled from, as plain .npy arrays: the CIFAR-10 training set
# (downloaded, unpickled), or your own images (dataset.images_dir: one subfolder per
# class, brought to each image size by imgbench.imagefolder). Then one pool of distinct
# images per image size (at most pool_bytes; CIFAR's 32x32 images upscaled for other
# sizes, a folder's taken as they are). Jobs tile a pool to their cutoff: image i is
# pool[i mod P].

from imgbench.data import imagefolder
from imgbench.experiment.config import ConfigError

DOWNLOADED_ARCHIVE = DATA_DIR / "cifar-10-python.tar.gz"
ARCHIVE = config["dataset"]["archive"] or DOWNLOADED_ARCHIVE
IMAGES_DIR = config["dataset"]["images_dir"]
# The folder's listing, its layout checked before any job runs (names and stat only, no
# image opened); None for CIFAR-10.
try:
    FOLDER = None if IMAGES_DIR is None else imagefolder.scan(IMAGES_DIR)
except imagefolder.FolderError as error:
    raise ConfigError(str(error)) from None
if FOLDER is not None:
    print(
        f"Note: dataset.images_dir: {len(FOLDER):,} images in {len(FOLDER.classes)} "
        f"classes in {IMAGES_DIR} (the CIFAR-10 rules are not used)",
        file=sys.stderr,
    )
# A folder's data files have their own directory, named after it: a CIFAR run and runs
# on different folders in one results directory never share a file.
FOLDER_DATA = DATA_DIR / f"folder-{imagefolder.tag(IMAGES_DIR or 'none')}"
POOL_DIR = DATA_DIR if FOLDER is None else FOLDER_DATA
# CIFAR: the training set (150 MB) plus one resized chunk at a time. A folder's images
# come at the pool's size: the pool (at most pool_bytes) is copied whole.
POOL_MEM_MB = int(
    768 + 2 * config["resize_chunk_bytes"] / 1e6
    if FOLDER is None
    else 384 + config["pool_bytes"] / 1e6
)


# Cluster login nodes have internet, compute nodes often not.
localrules:
    download_cifar,


rule download_cifar:
    output:
        archive=DOWNLOADED_ARCHIVE,
    log:
        LOGS_DIR / "download_cifar.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=60,
    params:
        url=config["dataset"]["url"],
        md5=config["dataset"]["md5"],
    script:
        "../scripts/download_cifar.py"


rule unpickle_cifar:
    input:
        archive=ARCHIVE,
        code=script_sources("unpickle_cifar.py"),
    output:
        images=DATA_DIR / "train_images.npy",
        labels=DATA_DIR / "train_labels.npy",
    log:
        LOGS_DIR / "unpickle_cifar.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=20,
    params:
        md5=config["dataset"]["md5"],
    script:
        "../scripts/unpickle_cifar.py"


# The folder is no input file: its listing's fingerprint (paths, sizes, mtimes) is a
# parameter, so adding, removing or touching an image reruns this rule.
rule image_folder:
    input:
        code=script_sources("image_folder.py"),
    output:
        images=FOLDER_DATA / "folder_{image_size}px_images.npy",
        labels=FOLDER_DATA / "folder_{image_size}px_labels.npy",
        classes=FOLDER_DATA / "folder_{image_size}px_classes.json",
    log:
        LOGS_DIR / "image_folder_{image_size}px.log",
    conda:
        "../../envs/bench.yaml"
    threads: 1
    resources:
        # The largest photograph decoded, and one chunk of output before a flush.
        mem_mb=int(1024 + config["resize_chunk_bytes"] / 1e6),
        runtime=60 + (0 if FOLDER is None else len(FOLDER)) // 2000,
        timing_slot=1,
    params:
        images_dir=IMAGES_DIR,
        listing=None if FOLDER is None else FOLDER.fingerprint,
        # Only the images the pool can hold are decoded.
        max_images=plan.PoolCount(config),
        chunk_bytes=config["resize_chunk_bytes"],
    script:
        "../scripts/image_folder.py"


# The pool's source: CIFAR's training set (resized by the pool job for sizes other than
# 32), or the folder's images already at the pool's size.
POOL_SOURCE = (
    rules.unpickle_cifar.output if FOLDER is None else rules.image_folder.output
)


rule pool:
    input:
        images=POOL_SOURCE.images,
        labels=POOL_SOURCE.labels,
        code=script_sources("pool.py"),
    output:
        images=POOL_DIR / "pool_{image_size}px_images.npy",
        labels=POOL_DIR / "pool_{image_size}px_labels.npy",
    log:
        LOGS_DIR / "pool_{image_size}px.log",
    conda:
        "../../envs/bench.yaml"
    threads: 1
    resources:
        mem_mb=POOL_MEM_MB,
        runtime=60,
        # Heavy disk and CPU work: never beside a timed store or read.
        timing_slot=1,
    params:
        max_images=plan.PoolCount(config),
        chunk_bytes=config["resize_chunk_bytes"],
    script:
        "../scripts/pool.py"
