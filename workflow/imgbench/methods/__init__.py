"""Storage methods: one module per method, all with the same small interface.

A method module defines

``DESCRIPTION``
    one line for legends and tables.
``OPTIONS``
    the method's format options and their defaults (the tuned default variant); a
    variant in ``config.yaml`` overrides some of them, e.g. PNG ``compress_level: 1``.
``CHOICES`` (optional)
    the allowed values of those options that have a fixed set, checked together with
    the names when the config is validated, before any job runs.
``disk_bytes(n_images, image_bytes, options) -> int``
    an upper bound of the bytes a store of ``n_images`` images of ``image_bytes`` each
    takes on disk (files rounded up to whole blocks with ``blocks``); the space check
    refuses a store above the free space of ``store_dir`` before writing anything.
``store(store_dir, images, labels, *, options=None)``
    write ``images`` and ``labels`` (N,) uint8 into the directory ``store_dir`` (which
    exists and is empty; everything in it belongs to the store), including the library's
    own close or commit. ``images`` is an (N, H, W, C) uint8 array or a stream of chunks
    of one (an object with ``shape``, ``dtype``, ``len()`` and ``iter_chunks()``, such as
    ``pool.TiledImages``; a dataset may be larger than memory). A method writes chunk by
    chunk from ``chunks(images)`` / ``indexed_chunks(images)`` and takes its metadata from
    ``images.shape`` and ``images.dtype``; it never builds an N-sized array, so a store
    holds a few chunks in memory whatever N is. ``labels`` is always a full array.
    Making the store durable is the harness's flush step (``fsync: per_file | syncfs |
    none``), timed apart as ``flush_seconds``; a method calls its library's own sync only
    when an option asks.
``read(store_dir) -> (images, labels)``
    the article's read: the whole store back into one numpy array and a label array
    (front to back). Only for stores that fit in memory.
``read_batches(store_dir, batch_images) -> iterator of (images, labels)``
    a generator over one epoch of the whole store, front to back, in batches of at most
    ``batch_images`` images: (k, H, W, C) uint8 images and (k,) labels, each a fresh
    array (not a buffer the next batch overwrites). The store is opened in the first
    ``next()`` and closed when the epoch ends (or the generator is closed). Memory is
    O(batch), never the whole store.
``open_reader(store_dir, *, readahead=True) -> reader``
    random access: ``reader.get(indices) -> (images, labels)`` returns the images at
    ``indices`` in that order, gathered into one array; ``reader.close()``. With
    ``readahead=False`` the reader tells the kernel its access is random (``madvise``
    ``MADV_RANDOM`` on a memory map, ``posix_fadvise`` ``POSIX_FADV_RANDOM`` on a file
    descriptor), so a single-image read fetches its own pages, not a readahead window.

A store records whatever its reader needs (e.g. LMDB's value format), so ``read`` and
``open_reader`` take no options. Adding a format is one new module here plus its name in
``config.yaml``'s ``methods``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np

METHODS_DIR = Path(__file__).resolve().parent


def blocks(nbytes: int, block: int = 4096) -> int:
    """``nbytes`` rounded up to whole file-system blocks."""
    return -(-int(nbytes) // block) * block


def available_methods() -> list[str]:
    """Names of all method modules in this package."""
    return sorted(p.stem for p in METHODS_DIR.glob("*.py") if not p.stem.startswith("_"))


def get_method(name: str) -> ModuleType:
    """Import the module implementing storage method ``name``."""
    if name not in available_methods():
        raise ValueError(
            f"unknown storage method {name!r}; choose one of {available_methods()} "
            f"or add a module workflow/imgbench/methods/{name}.py"
        )
    return importlib.import_module(f"{__name__}.{name}")


def resolve_options(module: ModuleType, options: dict | None) -> dict:
    """The module's default options updated with ``options``; unknown names are an error."""
    defaults = dict(getattr(module, "OPTIONS", {}))
    unknown = sorted(set(options or {}) - set(defaults))
    if unknown:
        name = module.__name__.rsplit(".", 1)[-1]
        known = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"method {name} has no option {', '.join(unknown)} (options: {known})")
    defaults.update(options or {})
    name = module.__name__.rsplit(".", 1)[-1]
    for option, allowed in getattr(module, "CHOICES", {}).items():
        value = defaults[option]
        # `True in (0, 1)` holds in Python; compare types too so 1 is not taken for true.
        if not any(value == choice and type(value) is type(choice) for choice in allowed):
            listed = ", ".join(
                "null" if c is None else str(c).lower() if isinstance(c, bool) else str(c)
                for c in allowed
            )
            raise ValueError(
                f"method {name} option {option} must be one of {listed}, not {value!r}"
            )
    return defaults


def module_path(name: str) -> Path:
    """Path of the module implementing ``name`` (declared as a rule input)."""
    return METHODS_DIR / f"{name}.py"


def chunks(images):
    """What ``store`` writes, front to back: the chunks of an image stream (an object with
    ``iter_chunks()``, such as ``pool.TiledImages``), or a plain array in one piece."""
    if hasattr(images, "iter_chunks"):
        yield from images.iter_chunks()
    else:
        yield images


def indexed_chunks(images):
    """``(start, chunk)`` for each chunk of ``chunks(images)``, ``chunk`` C-contiguous.
    Checks that every chunk has the stream's image shape and dtype and that the chunks add
    up to ``len(images)`` images (a store's metadata is written from ``images.shape``)."""
    shape = tuple(images.shape[1:])
    dtype = np.dtype(images.dtype)
    start = 0
    for chunk in chunks(images):
        if tuple(chunk.shape[1:]) != shape or chunk.dtype != dtype:
            raise ValueError(
                f"chunk at image {start} is {chunk.shape} {chunk.dtype}, "
                f"the stream's images are {shape} {dtype}"
            )
        yield start, np.ascontiguousarray(chunk)
        start += len(chunk)
    if start != len(images):
        raise ValueError(f"the stream yielded {start} images, its length is {len(images)}")


def batch_bounds(count: int, batch_images: int):
    """``(start, stop)`` of each batch of at most ``batch_images`` of ``count`` images."""
    batch_images = int(batch_images)
    if batch_images < 1:
        raise ValueError(f"batch_images must be at least 1, not {batch_images}")
    for start in range(0, int(count), batch_images):
        yield start, min(start + batch_images, int(count))
