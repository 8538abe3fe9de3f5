"""Your own images: a folder with one subfolder per class, scanned, checked and loaded at
one image size.

Layout: ``images_dir/<class>/<image>`` (images may sit deeper inside a class folder). The
label of a class is its index among the class folders sorted by name (Python's string
order), as torchvision's ImageFolder numbers them. Files and folders whose name starts
with ``.`` (``.DS_Store``, ``._photo.jpg``, ``.git``) and Windows' ``Thumbs.db`` and
``desktop.ini`` are ignored; every other file must be an image Pillow can read.

Order: by class, then by the file's path inside its class folder. The first ``count``
images in this order are kept (the pool holds at most ``pool_bytes``).

Policy, per image: EXIF orientation applied (``ImageOps.exif_transpose``: photos the
right way up); converted to RGB: grayscale repeated on three channels (16-bit grayscale
scaled to 8 bits), palette images through their palette, CMYK and others by Pillow, an
alpha channel dropped (the stored colours kept, as torchvision's loader does; no colour
profile applied); the first frame of a multi-frame file; then resized so the SHORT side
equals ``size`` (the long side scaled by the same factor and rounded; Pillow's
``resize.FILTER``, bicubic, no ``reducing_gap``: deterministic), and the centre
``size`` x ``size`` square cropped (an odd excess leaves the extra pixel on the right or
bottom). Small images are upscaled the same way.

Cheap checks (the folder exists, has class folders, none empty, no stray files) need
only a listing with ``stat``: ``scan`` runs them in the Snakemake process, before any
job, and its ``fingerprint`` (paths, sizes, mtimes) is a rule parameter, so a changed
folder reruns its rule. Reading the images (``identify`` every header, then ``decode``
one at a time) happens in the job.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgbench.data.resize import FILTER, chunk_length
from imgbench.system.atomic import save_npy, write_text

KEY = "dataset.images_dir"
LAYOUT = "images_dir/<class>/<image>: one subfolder per class, holding that class's images"
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
MAX_CLASSES = 256  # labels are one byte, like CIFAR's
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class FolderError(ValueError):
    """The image folder is missing, badly laid out, or holds a file that is not an image;
    the message is one sentence naming the file or folder, the config key and the fix."""


@dataclass(frozen=True)
class Entry:
    """One image file: its path relative to the folder (with ``/``), label and stat."""

    path: str
    label: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Listing:
    """The classes and image files of a folder, in the documented order."""

    root: Path
    classes: tuple[str, ...]
    entries: tuple[Entry, ...]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def fingerprint(self) -> str:
        """A digest of every file's path, label, size and mtime: changes when a file is
        added, removed, renamed, rewritten or touched, or a class folder renamed."""
        digest = hashlib.sha256()
        for entry in self.entries:
            digest.update(f"{entry.label}\t{entry.path}\t{entry.size}\t{entry.mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def paths(self) -> Iterator[Path]:
        return (self.root / entry.path for entry in self.entries)

    @property
    def labels(self) -> np.ndarray:
        return np.array([entry.label for entry in self.entries], dtype=np.uint8)


def tag(images_dir: str | os.PathLike) -> str:
    """A short, file-name-safe name of the folder for its data files: the folder's name
    and a digest of the path as configured (so two folders never share data files)."""
    text = os.path.normpath(os.fspath(images_dir))
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", os.path.basename(text)).strip("_")[:40]
    return f"{name or 'images'}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def _class_files(root: Path, folder: Path, label: int) -> list[Entry]:
    """Every image file below one class folder (links followed, each folder once)."""
    entries = []
    seen = set()
    for current, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(name for name in dirs if not _ignored(name))
        for name in files:
            if _ignored(name):
                continue
            path = Path(current) / name
            try:
                stat = path.stat()
            except OSError as error:
                raise FolderError(
                    f"{path} cannot be read ({error.strerror or error}); fix or remove it "
                    f"from {KEY}"
                ) from None
            entries.append(
                Entry(path.relative_to(root).as_posix(), label, stat.st_size, stat.st_mtime_ns)
            )
    return sorted(entries, key=lambda entry: entry.path)


def scan(images_dir: str | os.PathLike) -> Listing:
    """List the classes and images of ``images_dir`` from names and ``stat`` alone (no
    image is opened); raise ``FolderError`` when the layout is wrong."""
    root = Path(images_dir)
    fix = f"give the path of a folder laid out as {LAYOUT} (or set {KEY} to null for CIFAR-10)"
    if not root.exists():
        raise FolderError(f"config key {KEY} points to {root}, which does not exist; {fix}")
    if not root.is_dir():
        raise FolderError(f"config key {KEY} points to {root}, which is not a folder; {fix}")
    try:
        children = sorted(os.scandir(root), key=lambda child: child.name)
    except OSError as error:
        raise FolderError(
            f"config key {KEY} points to {root}, which cannot be listed "
            f"({error.strerror or error}); make it readable or {fix}"
        ) from None
    children = [child for child in children if not _ignored(child.name)]
    class_dirs = [child for child in children if child.is_dir()]
    stray = [child for child in children if not child.is_dir()]
    if not class_dirs:
        found = f"holds files ({stray[0].name}, ...) but no" if stray else "holds no"
        raise FolderError(
            f"config key {KEY} points to {root}, which {found} class subfolders; lay it out "
            f"as {LAYOUT} (e.g. {root}/cat/1.jpg, {root}/dog/1.jpg)"
        )
    if stray:
        raise FolderError(
            f"config key {KEY} points to {root}, which holds the file {stray[0].name} beside "
            f"its class folders; every image belongs in a class folder ({LAYOUT}): move it "
            "into one or remove it"
        )
    if len(class_dirs) > MAX_CLASSES:
        raise FolderError(
            f"config key {KEY} points to {root}, which has {len(class_dirs)} class folders, "
            f"more than {MAX_CLASSES} (labels are one byte); merge classes or use a folder "
            f"with at most {MAX_CLASSES}"
        )
    entries = []
    for label, child in enumerate(class_dirs):
        found = _class_files(root, Path(child.path), label)
        if not found:
            raise FolderError(
                f"config key {KEY}: the class folder {child.path} holds no images; add "
                "images to it or remove the folder"
            )
        entries.extend(found)
    return Listing(root, tuple(child.name for child in class_dirs), tuple(entries))


def _not_an_image(path: Path, error: BaseException) -> FolderError:
    if isinstance(error, UnidentifiedImageError):
        reason = "no image format Pillow knows"
    elif isinstance(error, Image.DecompressionBombError):
        reason = f"larger than Pillow's limit of {Image.MAX_IMAGE_PIXELS:,} pixels, times two"
    else:
        reason = f"{type(error).__name__}: {error}"
    return FolderError(
        f"{path} is not an image Pillow can read ({reason}); remove it from {KEY} or replace it"
    )


# Errors Pillow raises for files it cannot open or decode (SyntaxError from some plugins).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def identify(listing: Listing) -> None:
    """Open every file's header (no pixels decoded): a file that is not an image Pillow
    can read raises ``FolderError`` naming it, before anything is written."""
    for path in listing.paths():
        try:
            with Image.open(path):
                pass
        except DECODE_ERRORS as error:
            raise _not_an_image(path, error) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """The documented conversion to RGB (EXIF orientation applied first)."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES:
        # Pillow's own conversion clips 16-bit values at 255; scale 0..65535 to 0..255.
        wide = np.asarray(image, dtype=np.int64)
        gray = np.clip((wide * 255 + 32767) // 65535, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "F":
        raise ValueError("floating-point pixels (mode F) have no standard 8-bit scale")
    return image.convert("RGB")


def square(image: Image.Image, size: int) -> Image.Image:
    """Resize so the short side is ``size`` (bicubic), then crop the centre square."""
    width, height = image.size
    if width <= height:
        new = (size, max(size, round(height * size / width)))
    else:
        new = (max(size, round(width * size / height)), size)
    resized = image.resize(new, FILTER)
    left = (new[0] - size) // 2
    top = (new[1] - size) // 2
    return resized.crop((left, top, left + size, top + size))


def decode(path: str | os.PathLike, size: int) -> np.ndarray:
    """One image file as a (size, size, 3) uint8 array by the documented policy."""
    try:
        with Image.open(path) as image:
            return np.asarray(square(to_rgb(image), size), dtype=np.uint8)
    except DECODE_ERRORS as error:
        raise _not_an_image(Path(path), error) from None


def write_arrays(
    listing: Listing,
    size: int,
    images_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    classes_path: str | os.PathLike,
    count: int | None = None,
    chunk_bytes: int = 1 << 28,
) -> int:
    """Write the first ``count`` images of ``listing`` (all by default) at ``size`` to
    ``images_path`` (an (N, size, size, 3) uint8 ``.npy``), their labels, and a JSON of
    the classes (name -> label) and files (position -> path). Every header is checked
    first; the images are decoded one at a time into a memory-mapped ``.part`` file that
    replaces ``images_path`` when complete, ``chunk_bytes`` of them flushed at a time.
    Returns the number of images written."""
    count = len(listing) if count is None else min(int(count), len(listing))
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    identify(listing)
    entries = listing.entries[:count]
    images_path = Path(images_path)
    partial = images_path.with_name(images_path.name + ".part")
    try:
        out = np.lib.format.open_memmap(
            partial, mode="w+", dtype=np.uint8, shape=(count, size, size, 3)
        )
        step = chunk_length(size, chunk_bytes)
        for index, entry in enumerate(entries):
            out[index] = decode(listing.root / entry.path, size)
            if (index + 1) % step == 0:
                out.flush()
        out.flush()
        del out
        os.replace(partial, images_path)
    finally:
        partial.unlink(missing_ok=True)
    save_npy(listing.labels[:count], labels_path)
    record = {
        "images_dir": str(listing.root),
        "classes": {name: label for label, name in enumerate(listing.classes)},
        "files": [entry.path for entry in entries],
        "files_in_folder": len(listing),
    }
    write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", classes_path)
    return count
