# Get the CIFAR-10 training set into plain .npy arrays, tiled to n_images.

DATA_DIR = Path("results") / "data"
DOWNLOADED_ARCHIVE = DATA_DIR / "cifar-10-python.tar.gz"
ARCHIVE = config["dataset"]["archive"] or DOWNLOADED_ARCHIVE
# The tiled set, at most a few copies in memory.
DUPLICATE_MEM_MB = int(
    512 + 3 * config["n_images"] * plan.image_bytes(plan.CIFAR_SIZE) / 1e6
)
# Sizes other than CIFAR's own 32 are made by the resize rule.
RESIZE_MEM_MB = int(512 + 2 * config["resize_chunk_bytes"] / 1e6)
RESIZED_SIZES = "|".join(map(str, plan.resized_sizes(config))) or "none"


# Cluster login nodes have internet, compute nodes often not.
localrules:
    download_cifar,


rule download_cifar:
    output:
        archive=DOWNLOADED_ARCHIVE,
    log:
        Path("logs") / "download_cifar.log",
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
        code=PACKAGE_DIR / "cifar.py",
    output:
        images=DATA_DIR / "train_images.npy",
        labels=DATA_DIR / "train_labels.npy",
    log:
        Path("logs") / "unpickle_cifar.log",
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


rule duplicate:
    input:
        images=rules.unpickle_cifar.output.images,
        labels=rules.unpickle_cifar.output.labels,
        code=PACKAGE_DIR / "cifar.py",
    output:
        images=DATA_DIR / f"dataset_{plan.CIFAR_SIZE}px_images.npy",
        labels=DATA_DIR / f"dataset_{plan.CIFAR_SIZE}px_labels.npy",
    log:
        Path("logs") / "duplicate.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=DUPLICATE_MEM_MB,
        runtime=20,
        # Heavy disk and CPU work: never beside a timed store or read.
        timing_slot=1,
    params:
        n_images=config["n_images"],
    script:
        "../scripts/duplicate.py"


rule resize:
    input:
        images=rules.duplicate.output.images,
        labels=rules.duplicate.output.labels,
        code=PACKAGE_DIR / "resize.py",
    output:
        images=DATA_DIR / "dataset_{image_size}px_images.npy",
        labels=DATA_DIR / "dataset_{image_size}px_labels.npy",
    log:
        Path("logs") / "resize_{image_size}px.log",
    wildcard_constraints:
        image_size=RESIZED_SIZES,
    conda:
        "../../envs/bench.yaml"
    threads: 1
    resources:
        mem_mb=RESIZE_MEM_MB,
        runtime=60,
        # Heavy disk and CPU work: never beside a timed store or read.
        timing_slot=1,
    params:
        n_images=plan.ResizeCount(config),
        chunk_bytes=config["resize_chunk_bytes"],
    script:
        "../scripts/resize.py"
