"""The CIFAR-10 python archive: download with md5 check, and a safe, vectorised loader."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

TRAINING_BATCHES = [f"data_batch_{number}" for number in range(1, 6)]
BATCH_DIR = "cifar-10-batches-py"
IMAGE_SHAPE = (32, 32, 3)
N_CLASSES = 10
OFFLINE_HINT = (
    "if this machine cannot reach it, download cifar-10-python.tar.gz elsewhere, copy it here "
    "and set dataset.archive to its path in config.yaml"
)


class DatasetError(RuntimeError):
    """The CIFAR-10 archive is missing, corrupt, or not in the official layout."""


def md5_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = md5_of(path)
    if actual != expected.lower():
        raise DatasetError(
            f"{path} has md5 {actual}, expected {expected} (dataset.md5): the file is corrupt "
            "or a different archive; download it again, or set dataset.md5 to the right "
            "checksum (or null to skip the check)"
        )


def download(
    url: str, destination: Path, md5: str | None, *, progress: bool = True, timeout: float = 60.0
) -> None:
    """Stream ``url`` to a temporary file beside ``destination``, check md5, rename."""
    from tqdm import tqdm

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(partial, "wb") as handle,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=destination.name,
                    disable=not progress,
                ) as bar,
            ):
                while chunk := response.read(1 << 20):
                    handle.write(chunk)
                    bar.update(len(chunk))
        check_md5(partial, md5)
        os.replace(partial, destination)
    except (urllib.error.URLError, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"could not download {url} ({error}); {OFFLINE_HINT}") from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches but refuses any class other than numpy's array rebuilders,
    so a tampered archive cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"): ("_codecs", "encode"),
        # Python 3's protocol 2 writes an empty bytes object (e.g. the buffer of a batch
        # without images) as a call of bytes().
        ("__builtin__", "bytes"): ("builtins", "bytes"),
        ("builtins", "bytes"): ("builtins", "bytes"),
    }

    def find_class(self, module: str, name: str):
        target = self.ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        if target[0] == "numpy._core.multiarray" and not hasattr(np, "_core"):
            target = ("numpy.core.multiarray", target[1])  # numpy < 2
        return super().find_class(*target)


def _load_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as error:
        raise DatasetError(f"batch {name} is not a readable CIFAR-10 pickle ({error})") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetError(f"batch {name} lacks the keys b'data' and b'labels' (has {keys})")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    pixels = int(np.prod(IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        raise DatasetError(
            f"batch {name} data is {data.dtype}{data.shape}, expected uint8 (N, {pixels})"
        )
    if labels.ndim != 1 or len(labels) != len(data):
        raise DatasetError(f"batch {name} has {len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise DatasetError(
            f"batch {name} has labels outside 0..{N_CLASSES - 1} ({labels.min()}..{labels.max()})"
        )
    # Rows are R plane, G plane, B plane of 32x32: one reshape + transpose for the batch.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.uint8)


def load_training_set(archive: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) uint8 from data_batch_1..5 of the archive."""
    archive = Path(archive)
    if not archive.is_file():
        raise DatasetError(f"CIFAR-10 archive {archive} does not exist; {OFFLINE_HINT}")
    images, labels = [], []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {member.name: member for member in tar.getmembers()}
            for name in TRAINING_BATCHES:
                member = members.get(f"{BATCH_DIR}/{name}")
                if member is None or not member.isfile():
                    raise DatasetError(
                        f"{archive} has no {BATCH_DIR}/{name}: it is not the CIFAR-10 python "
                        "archive (cifar-10-python.tar.gz) in the official layout"
                    )
                handle = tar.extractfile(member)
                batch_images, batch_labels = _load_batch(handle.read(), name)
                images.append(batch_images)
                labels.append(batch_labels)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DatasetError(
            f"{archive} is not a readable tar.gz archive ({error}); download it again "
            "(a partial download looks like this)"
        ) from error
    return np.concatenate(images), np.concatenate(labels)
