"""Writes that never leave a half-written file under the final name: every file the
workflow writes in one piece (rows, environment records, manifests, tables, arrays) goes
through ``replacing``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """The path of a partial file beside ``path`` to write; when the block ends without
    an error it replaces ``path`` at once (``os.replace``), otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def save_npy(array: np.ndarray, path: str | Path) -> None:
    with replacing(path) as partial, open(partial, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def write_text(text: str, path: str | Path) -> None:
    with replacing(path) as partial:
        partial.write_text(text)
