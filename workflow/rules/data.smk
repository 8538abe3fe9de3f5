# Get the CIFAR-10 training set into plain .npy arrays, tiled to n_images.

DATA_DIR = Path("results") / "data"
DOWNLOADED_ARCHIVE = DATA_DIR / "cifar-10-python.tar.gz"
ARCHIVE = config["dataset"]["archive"] or DOWNLOADED_ARCHIVE


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
        images=DATA_DIR / "dataset_images.npy",
        labels=DATA_DIR / "dataset_labels.npy",
    log:
        Path("logs") / "duplicate.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=20,
    params:
        n_images=config["n_images"],
    script:
        "../scripts/duplicate.py"
