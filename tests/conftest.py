from __future__ import annotations

import pytest
from cifar_fixtures import make_archive


@pytest.fixture
def tiny_archive(tmp_path):
    """(path, md5, images, labels) of a tiny official-layout CIFAR-10 archive."""
    return make_archive(tmp_path / "cifar-10-python.tar.gz")
