"""Fixtures shared by the unit tests of the results modules."""

import pytest
from results_fixtures import made_tables


@pytest.fixture
def tables(tmp_path):
    """Statistics, disk usage and rows of a small made-up run (``made_tables``)."""
    return made_tables(tmp_path)
