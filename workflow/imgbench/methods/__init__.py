"""Storage methods: one module per method, all with the same small interface.

Adding a format is this one module plus its name in ``config.yaml``'s ``methods`` (and,
only when it needs a library the project does not have yet, that library in
``pyproject.toml``, ``envs/requirements.lock`` and ``envs/bench.yaml``). Nothing else
names the methods: ``available_methods`` finds the modules here, the config validation
checks names and options against them, the rows carry each method's ``DESCRIPTION``
into the tables and legends, and the provenance asks the method for its versions.

A method module defines

``DESCRIPTION``
    one line naming the method in figure legends and in the summary (the store and read
    jobs write it into every row, column ``method_description``; the figures and tables
    take it from there).
``OPTIONS``
    the method's format options and their defaults (the tuned default variant); a
    variant in ``config.yaml`` overrides some of them, e.g. PNG ``compress_level: 1``.
``CHOICES`` (optional)
    the allowed values of those options, checked together with the names when the
    config is validated, before any job runs: a tuple of the values (``("none",
    "zstd")``), or a range from ``_base`` (``whole_number(1, "images")``, ``byte_size(1 <<
    20)``) for a count or size; an option without an entry takes any value.
``check_options(options)`` (optional)
    what ``CHOICES`` cannot say, about several options together (zarr: ``shard_images``
    a multiple of ``chunk_images``): raises ``_base.OptionError`` naming the option at
    fault; also run when the config is validated.
``PACKAGES``
    the distributions (pip names, e.g. ``("h5py",)``) the method imports beyond the
    project's core (numpy); the provenance records their versions for the method's jobs.
    ``()`` when it needs none.
``library_versions() -> dict`` (optional)
    versions of the C libraries under those packages that the package versions do not pin
    (``{"hdf5_c": "1.14.6"}``), recorded with them.
``disk_bytes(n_images, image_bytes, options) -> int``
    an upper bound of the bytes a store of ``n_images`` images of ``image_bytes`` each
    takes on disk (files rounded up to whole blocks with ``blocks``); the space check
    refuses a store above the free space of ``store_dir`` before writing anything.
``store(store_dir, images, labels, *, options)``
    write ``images`` and ``labels`` (N,) uint8 into the directory ``store_dir`` (which
    exists and is empty; everything in it belongs to the store), including the library's
    own close or commit. ``options`` is always the complete dict: the harness resolves
    the variant's options once (``resolve_options``: defaults filled in, names and
    ``CHOICES`` checked, an encoding's option given for another encoding refused, the
    module's ``check_options`` run) and passes the result, so a method reads
    ``options[name]`` and never checks them itself. Everyone else calls
    ``methods.store(name, store_dir, images, labels, options)``, which resolves a
    variant's options (``None``: the defaults) and calls the method's ``store``.
    ``images`` is an (N, H, W, C) uint8 array or a stream of chunks of one (an object
    with ``shape``, ``dtype``, ``len()`` and ``iter_chunks()``, such as
    ``pool.TiledImages``; a dataset may be larger than memory). A method writes chunk by
    chunk from ``chunks(images)`` / ``indexed_chunks(images)`` and takes its metadata
    from ``images.shape`` and ``images.dtype``; it never builds an N-sized array, so a
    store holds a few chunks in memory whatever N is. ``labels`` is always a full array,
    one label per image (``_base.check_lengths``). Making the store durable is the
    harness's flush step (``fsync: per_file | syncfs | none``), timed apart as
    ``flush_seconds``; a method calls its library's own sync only when an option asks.
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
    random access (usually ``open_reader = _base.opener(Reader)``): ``reader.get(indices)
    -> (images, labels)`` returns the images at ``indices`` in that order, gathered into
    one array; ``reader.close()``. Every array ``read``, ``read_batches`` and ``get``
    return must be fresh: memory the method (or its library) allocated, never a view of a
    memory-mapped store, which would be read only when the harness checks it, after the
    clock stopped. The harness refuses such a view in one sentence (``freshness``). With
    ``readahead=False`` the reader tells the kernel its access is random (``madvise``
    ``MADV_RANDOM`` on a memory map, ``posix_fadvise`` ``POSIX_FADV_RANDOM`` on a file
    descriptor: ``_base.advise_random_map`` and ``_base.advise_random``), so a
    single-image read fetches its own pages, not a readahead window.
``read_units(store_dir) -> list of (start, stop)`` (optional)
    the store's natural units of reading, for the ``buffered_shuffle`` read pattern:
    contiguous image ranges covering images 0 to N exactly once, in order, none empty
    (wds: its shards; parquet: its row groups; zarr: its shards). The pattern reads each
    unit with one ``reader.get(np.arange(start, stop))``, the units in a seeded random
    order, through a shuffle buffer, as a streaming loader reads shards. A method without
    it, or whose ``read_units`` returns ``None`` for a store (zarr's unsharded one-image
    chunks), is read in blocks of ``batch_size`` consecutive images (``harness.access``).
``read_path(options) -> str`` (optional)
    one phrase saying how the reader reads a batch of a store written with ``options``
    (``"one H5Dread of a one-image hyperslab per image"``); every row carries it
    (``read_path``) and the summary's methods table names it per series.

A store records whatever its reader needs (e.g. LMDB's value format), so ``read`` and
``open_reader`` take no options.

``methods/_base.py`` holds what the modules share, each taken by name where needed: the
default ``open_reader`` (``opener``), a ``read`` made of ``read_batches`` for a method
with no better whole read (``read_from_batches``), the images/labels length check
(``check_lengths``), the store header (``store_header``: count, shape, dtypes and the
method's own fields), the random-access advice (``advise_random``,
``advise_random_map``), the codec versions under Pillow (``pillow_codec_versions``) and
the option ranges of ``CHOICES``. A new format is one module using them.

Format libraries are imported inside the functions that use them, never at the top of
the module: importing a method module for its names, options and packages (the config
validation and the space check in the Snakemake process) loads only numpy, so the
Snakemake process never loads h5py, lmdb or Pillow, whatever environment a rule's jobs
run in. A job pays the import in its untimed warm-up, before any timed region.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np

from imgbench.methods import encoding
from imgbench.methods._base import OptionError as OptionError  # re-exported for config
from imgbench.methods._base import check_choices

METHODS_DIR = Path(__file__).resolve().parent


def blocks(nbytes: int, block: int = 4096) -> int:
    """``nbytes`` rounded up to whole file-system blocks."""
    return -(-int(nbytes) // block) * block


# Modules of this package that serve the methods and are not methods themselves.
SUPPORT_MODULES = ("encoding", "codecs")


def available_methods() -> list[str]:
    """Names of all method modules in this package."""
    return sorted(
        p.stem
        for p in METHODS_DIR.glob("*.py")
        if not p.stem.startswith("_") and p.stem not in SUPPORT_MODULES
    )


def get_method(name: str) -> ModuleType:
    """Import the module implementing storage method ``name``."""
    if name not in available_methods():
        raise ValueError(
            f"unknown storage method {name!r}; choose one of {available_methods()} "
            f"or add a module workflow/imgbench/methods/{name}.py"
        )
    return importlib.import_module(f"{__name__}.{name}")


FUNCTIONS = ("disk_bytes", "store", "read", "read_batches", "open_reader")


def contract_problems(module: ModuleType) -> list[str]:
    """What ``module`` lacks of the method contract above, one phrase each (none: it
    keeps it). Checked for every configured method when the config is validated."""
    problems = []
    description = getattr(module, "DESCRIPTION", None)
    if not isinstance(description, str) or not description.strip() or "\n" in description:
        problems.append("DESCRIPTION (one line of text for legends and tables)")
    if not isinstance(getattr(module, "OPTIONS", None), dict):
        problems.append("OPTIONS (a dict of its options and their defaults; {} for none)")
    packages = getattr(module, "PACKAGES", None)
    if not isinstance(packages, tuple) or not all(isinstance(p, str) for p in packages):
        problems.append('PACKAGES (a tuple of the pip names it imports, e.g. ("h5py",))')
    problems += [f"{name}()" for name in FUNCTIONS if not callable(getattr(module, name, None))]
    versions = getattr(module, "library_versions", None)
    if versions is not None and not callable(versions):
        problems.append("library_versions() (a function, if defined)")
    units = getattr(module, "read_units", None)
    if units is not None and not callable(units):
        problems.append("read_units() (a function, if defined)")
    return problems


def read_path_of(module: ModuleType, options: dict) -> str:
    """How ``module``'s reader reads a batch of a store written with ``options`` (its
    ``read_path(options)``); ``"n/a"`` for a method that does not say."""
    describe = getattr(module, "read_path", None)
    return describe(options) if callable(describe) else "n/a"


def resolve_options(module: ModuleType, options: dict | None) -> dict:
    """The module's default options updated with ``options``, checked: unknown names,
    values outside ``CHOICES``, an encoding's option given for another encoding, a
    ``codec`` that lacks the encoding (the codec resolved: ``encoding.resolve_codec``) and
    the module's own ``check_options`` (a ``ValueError``; an ``OptionError`` names the
    option)."""
    defaults = dict(getattr(module, "OPTIONS", {}))
    name = module.__name__.rsplit(".", 1)[-1]
    unknown = sorted(set(options or {}) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"method {name} has no option {', '.join(unknown)} (options: {known})")
    defaults.update(options or {})
    check_choices(name, getattr(module, "CHOICES", {}), defaults, module.OPTIONS)
    misplaced = encoding.misplaced_options(options or {}, defaults)
    if misplaced:
        raise ValueError(f"method {name} {misplaced}")
    defaults = encoding.resolve_codec(name, defaults)
    check_options = getattr(module, "check_options", None)
    if check_options is not None:
        check_options(defaults)
    return defaults


def store(method: str | ModuleType, store_dir, images, labels, options: dict | None = None) -> None:
    """Write a store with ``method`` (a name or a module) and a variant's ``options``
    (``None``: the defaults), resolved here. The harness resolves a job's options once
    itself and calls the module's ``store``; this is the call for everyone else."""
    module = get_method(method) if isinstance(method, str) else method
    module.store(Path(store_dir), images, labels, options=resolve_options(module, options))


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
