from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cifar_fixtures import make_archive  # noqa: E402


@pytest.fixture
def tiny_archive(tmp_path):
    """(path, md5, images, labels) of a tiny official-layout CIFAR-10 archive."""
    return make_archive(tmp_path / "cifar-10-python.tar.gz")
