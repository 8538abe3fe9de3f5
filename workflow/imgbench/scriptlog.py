"""Logging for the Snakemake scripts: to the rule's log file and to stderr, errors included."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup(log_path: str | Path) -> logging.Logger:
    """Send log records (and any uncaught exception) to ``log_path`` and to stderr."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    logger = logging.getLogger("imgbench")

    def log_uncaught(kind, value, traceback):
        logger.error("%s: %s", kind.__name__, value, exc_info=(kind, value, traceback))

    sys.excepthook = log_uncaught
    return logger
