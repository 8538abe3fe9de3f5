"""Whether what a method returned is a fresh array, not a window onto the store.

The contract asks ``read``, ``read_batches`` and ``reader.get`` for fresh arrays. A view of
a memory map of the store passes every check (the harness compares it, which faults its
pages in, outside the clock) while the timed read only set up the view: a cold 253 MiB
whole read then "took" 0.0014 s against 0.093-0.109 s. So the harness refuses an array
backed by a memory map (``numpy.memmap``, ``mmap.mmap``, or any object whose memory lies
in a file-backed mapping of this process, such as LMDB's buffers or a memory-mapped
Arrow buffer), found by walking the ``.base`` chain to the object that owns the memory and,
where that is not numpy's or Python's own allocation, by looking the data's address up
in ``/proc/self/maps``.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

MAPS = Path("/proc/self/maps")


def _owner(array: np.ndarray):
    """The object at the end of the ``.base`` chain (the array itself when it owns its
    memory), and whether a numpy memmap or mmap was met on the way."""
    current = array
    while isinstance(current, np.ndarray):
        if isinstance(current, np.memmap):
            return current, True
        if current.flags.owndata or current.base is None:
            return current, False
        current = current.base
    if isinstance(current, memoryview) and current.obj is not None:
        current = current.obj
    return current, isinstance(current, mmap.mmap)


def _file_mapping_at(address: int) -> str | None:
    """The file a mapping of this process holding ``address`` maps, if any."""
    try:
        lines = MAPS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(maxsplit=5)
        low, high = (int(bound, 16) for bound in fields[0].split("-"))
        if low <= address < high:
            path = fields[5].strip() if len(fields) > 5 else ""
            return path if path.startswith("/") else None
    return None


def problem(array) -> str | None:
    """None when ``array`` is a fresh array (memory numpy or Python allocated, or a view of
    such an array); else what it is backed by."""
    if not isinstance(array, np.ndarray):
        return None  # not an array at all: the shape check says so
    owner, mapped = _owner(array)
    if mapped:
        return f"a view of a memory map ({type(owner).__name__})"
    if isinstance(owner, np.ndarray) and owner.flags.owndata:
        return None
    if isinstance(owner, (bytes, bytearray)):
        return None
    if array.size == 0:
        return None
    path = _file_mapping_at(array.__array_interface__["data"][0])
    if path is not None:
        return f"a view of the memory-mapped file {path}"
    return None
