"""What the method modules share, so a format module holds only what is its own.

A method module takes from here what it needs (nothing is inherited; every name stays
visible in the module):

``opener(Reader)``
    the default ``open_reader``: ``open_reader = opener(Reader)`` opens ``Reader(store_dir,
    readahead=readahead)``.
``read_from_batches(read_batches)``
    a ``read`` for a method that has no better way to read its whole store: one epoch of
    ``read_batches`` in a single batch (the method's own batch is the array returned).
``check_lengths(images, labels)``
    the store's first step: as many labels as images.
``store_header(images, labels, **fields)``
    the metadata dict a store records for its reader (count, image shape and dtype, the
    labels' dtype, then the method's own ``fields``, in that order).
``advise_random(fd)`` and ``advise_random_map(mapping)``
    the random-access advice of a reader opened with ``readahead=False``
    (``POSIX_FADV_RANDOM`` on a file descriptor, ``MADV_RANDOM`` on a memory map).
``pillow_codec_versions(*codecs)``
    the versions of the codec libraries under Pillow (zlib, libjpeg-turbo, libwebp) for a
    method's ``library_versions``.
``whole_number(minimum, unit)`` and ``byte_size(minimum)``
    option ranges for ``CHOICES`` besides tuples of allowed values, checked with the
    names when the config is validated (``methods.resolve_options``), before any job;
    ``OptionError`` is the error of a bad value, also for a module's ``check_options``.

Only the standard library, numpy and ``system.units`` are imported here (the method
contract's lazy import: Pillow only inside ``pillow_codec_versions``).
"""

from __future__ import annotations

import mmap
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgbench.system.units import human_bytes

# --- options -------------------------------------------------------------------------------


class OptionError(ValueError):
    """A method option with a bad value, in parts for the config's sentence: ``option``,
    its ``value``, the ``rule`` it breaks (``a whole number of images of at least 1``)
    and the ``fix``."""

    def __init__(self, method: str, option: str, value, rule: str, fix: str):
        self.method, self.option, self.value = method, option, value
        self.rule, self.fix = rule, fix
        super().__init__(f"method {method} option {option} must be {rule}, not {value!r}; {fix}")


@dataclass(frozen=True)
class WholeNumber:
    """An option that is a whole number (an ``int``, not a ``bool``) of at least
    ``minimum``, counted in ``unit`` (``images``, ``bytes``)."""

    minimum: int = 1
    unit: str = ""

    def describe(self) -> str:
        """``a whole number of images of at least 1``."""
        counted = f" of {self.unit}" if self.unit else ""
        shown = f"{self.minimum}"
        if self.unit == "bytes" and self.minimum >= 1024:
            shown += f" ({human_bytes(self.minimum)})"
        return f"a whole number{counted} of at least {shown}"

    def allows(self, value) -> bool:
        return type(value) is int and value >= self.minimum


def whole_number(minimum: int = 1, unit: str = "") -> WholeNumber:
    """The range of a count option, e.g. ``whole_number(1, "images")``."""
    return WholeNumber(int(minimum), unit)


def byte_size(minimum: int = 1) -> WholeNumber:
    """The range of a size option in bytes, e.g. ``byte_size(1 << 20)``."""
    return WholeNumber(int(minimum), "bytes")


def listed(allowed) -> str:
    """Allowed values as the config spells them; a long run of whole numbers (JPEG
    quality) as ``1 to 100``."""
    allowed = tuple(allowed)
    whole = all(type(c) is int for c in allowed)
    if whole and len(allowed) > 12 and list(allowed) == list(range(allowed[0], allowed[-1] + 1)):
        return f"{allowed[0]} to {allowed[-1]}"
    return ", ".join(
        "null" if c is None else str(c).lower() if isinstance(c, bool) else str(c) for c in allowed
    )


def option_rule(allowed, value) -> str | None:
    """The rule ``value`` breaks of an option whose ``CHOICES`` entry is ``allowed`` (a
    tuple of values or a ``WholeNumber``), e.g. ``one of none, zstd``; None: it keeps it."""
    if isinstance(allowed, WholeNumber):
        return None if allowed.allows(value) else allowed.describe()
    # `True in (0, 1)` holds in Python; compare types too so 1 is not taken for true.
    if any(value == choice and type(value) is type(choice) for choice in allowed):
        return None
    return f"one of {listed(allowed)}"


def check_choices(method: str, choices: dict, options: dict, defaults: dict) -> None:
    """Raise ``OptionError`` for the first of ``options`` outside its entry of
    ``choices`` (``defaults``: the method's, suggested as the fix of a range)."""
    for option, allowed in choices.items():
        value = options[option]
        rule = option_rule(allowed, value)
        if rule is None:
            continue
        if isinstance(allowed, WholeNumber):
            fix = f"set it to e.g. {defaults[option]!r} (the default) or remove it"
        else:
            fix = "choose one of those or remove it"
        raise OptionError(method, option, value, rule, fix)


# --- the store -----------------------------------------------------------------------------


def check_lengths(images, labels) -> None:
    """Refuse a store of ``images`` (an array or a stream) with another number of
    ``labels``."""
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")


def store_header(images, labels: np.ndarray, **fields) -> dict:
    """What a store records of its images for its reader: ``count``, image ``shape``,
    ``dtype`` and ``labels_dtype``, then ``fields`` (the method's own, e.g. its
    ``encoding``) in the order given."""
    return {
        "count": len(images),
        "shape": [int(n) for n in images.shape[1:]],
        "dtype": str(np.dtype(images.dtype)),
        "labels_dtype": str(labels.dtype),
        **fields,
    }


# --- reading -------------------------------------------------------------------------------


def opener(reader_class: type) -> Callable:
    """The default ``open_reader`` of a module whose reader is ``reader_class``."""

    def open_reader(store_dir: Path, *, readahead: bool = True):
        return reader_class(store_dir, readahead=readahead)

    open_reader.__doc__ = f"``{reader_class.__name__}(store_dir, readahead=readahead)``."
    return open_reader


# A batch larger than any store: ``read_batches`` gives the whole store as one batch.
WHOLE_STORE = sys.maxsize


def read_from_batches(
    read_batches: Callable[[Path, int], Iterator[tuple[np.ndarray, np.ndarray]]],
) -> Callable[[Path], tuple[np.ndarray, np.ndarray]]:
    """A ``read`` made of ``read_batches``: one epoch in one batch of the whole store,
    that batch returned as it is (no copy; batches are fresh arrays by the contract). An
    empty store yields no batch; it reads as empty arrays of shape ``(0,)``."""

    def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
        batches = list(read_batches(store_dir, WHOLE_STORE))
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.uint8)
        return (
            np.concatenate([images for images, _ in batches]),
            np.concatenate([labels for _, labels in batches]),
        )

    read.__doc__ = "The whole store in one array: ``read_batches`` in one batch."
    return read


def advise_random(fd: int) -> None:
    """Tell the kernel that reads of the file ``fd`` are random (``POSIX_FADV_RANDOM``):
    no readahead window, a read fetches its own pages."""
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)


def advise_random_map(mapping: mmap.mmap) -> None:
    """Tell the kernel that accesses of the memory map ``mapping`` are random
    (``MADV_RANDOM``: a page fault reads its own page only)."""
    mapping.madvise(mmap.MADV_RANDOM)


# --- provenance ----------------------------------------------------------------------------

# The codec libraries under Pillow, by the names provenance records, and Pillow's names.
PILLOW_CODECS = {"zlib": "zlib", "libjpeg_turbo": "libjpeg_turbo", "libwebp": "webp"}


def pillow_codec_versions(*codecs: str) -> dict:
    """Versions of the codec libraries under Pillow (``codecs`` among ``PILLOW_CODECS``;
    none given: all), those this Pillow has, keyed by the names of ``PILLOW_CODECS``."""
    from PIL import features

    versions = {}
    for name in codecs or tuple(PILLOW_CODECS):
        try:
            version = features.version(PILLOW_CODECS[name])
        except ValueError:  # a Pillow that does not know the feature
            version = None
        if version is not None:
            versions[name] = version
    return versions
