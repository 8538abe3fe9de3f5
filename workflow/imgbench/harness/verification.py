"""Verification: what a store reads back must be what was stored, checked outside the clock.

A lossless store is checked exactly: every pixel and label equal to the source's. A lossy
one (JPEG, lossy WebP) is checked by fidelity: every image read must keep the config's
``image_psnr_floor_db`` against its source image (a faithful encoding does by far, an
image from the wrong index or a corrupt one does not), and the store once, after its
timed stores, ``store_psnr_floor_db`` over all its pixels (``store_psnr``). Labels are
always exact, and every batch must be a fresh array (``freshness``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgbench.data import pool
from imgbench.harness import freshness
from imgbench.harness.source import as_source
from imgbench.methods import encoding


class VerificationError(RuntimeError):
    """A store read back something other than what was stored."""


def _name(method: str) -> str:
    return method.rsplit(".", 1)[-1]


def check_count(method: str, got: int, expected: int) -> None:
    """A whole store read back: exactly ``expected`` images, no more, no fewer."""
    if got != expected:
        raise VerificationError(
            f"{_name(method)} store read back wrong data: {got} images, expected {expected}"
        )


def check_epoch(method: str, drawn: list, requested: list) -> None:
    """The images a reader's batches held (``drawn``, index arrays) are the images it
    read (``requested``), each exactly once: no image lost or served twice."""
    got = np.sort(np.concatenate([np.asarray(d) for d in drawn] or [np.empty(0, int)]))
    expected = np.sort(np.concatenate([np.asarray(r) for r in requested] or [np.empty(0, int)]))
    if not np.array_equal(got, expected):
        twice = np.unique(got[1:][got[1:] == got[:-1]])
        raise VerificationError(
            f"{_name(method)} store read back wrong data: the batches held {len(got)} images "
            f"({len(twice)} of them more than once), the reads {len(expected)}"
        )


def require_fresh(method: str, *arrays) -> None:
    """Refuse images or labels that are not fresh arrays (``freshness``), in one sentence
    naming the method and the rule."""
    for array in arrays:
        backing = freshness.problem(array)
        if backing is not None:
            raise VerificationError(
                f"the {_name(method)} method returned {backing}: a batch must be a fresh "
                "array (the contract of read, read_batches and reader.get), because a view is read "
                "only when someone touches it, after the clock stopped; copy it in the "
                "method (e.g. np.array(view) or np.frombuffer(bytes(...)))"
            )


def verify(
    method: str,
    got: tuple[np.ndarray, np.ndarray],
    source,
    labels=None,
    *,
    start: int = 0,
    indices=None,
    floor_db: float | None = None,
) -> None:
    """Check images and labels read back against the source: images ``start``.. of it, or
    the images at ``indices``. ``source`` is a ``pool.TiledImages`` (compared piece by
    piece with the pool) or an array of the expected images with ``labels``.

    ``floor_db`` is ``None`` for a lossless store: every pixel must be equal. For a lossy
    one (JPEG, lossy WebP) it is the config's ``image_psnr_floor_db``: every image must
    keep that PSNR against its source image, which a faithful encoding does by far and
    an image from the wrong index (about 10 dB against a photo) or a corrupt one does
    not; labels are always exact. (The store's own floor is checked once, in
    ``store_psnr``.)"""
    got_images, got_labels = got
    require_fresh(method, got_images, got_labels)
    if not isinstance(source, pool.TiledImages):
        source = as_source(source, labels)
    if indices is not None:
        indices = np.asarray(indices)
        count = len(indices)
        expected_labels = source.labels[indices]
    else:
        count = len(got_images)
        expected_labels = source.labels[start : start + count]
    expected_shape = (count, *source.shape[1:])
    problems = []
    if indices is None and start + count > len(source):
        problems.append(f"{start + count} images, the store holds {len(source)}")
    elif got_images.shape != expected_shape or got_images.dtype != source.dtype:
        problems.append(
            f"images {got_images.dtype}{got_images.shape}, expected {source.dtype}{expected_shape}"
        )
    elif floor_db is not None:
        positions = indices if indices is not None else np.arange(start, start + count)
        psnr = encoding.psnr_per_image_db(source.take(positions), got_images)
        below = np.flatnonzero(psnr < floor_db)
        if len(below):
            worst = int(below[np.argmin(psnr[below])])
            problems.append(
                f"image {int(positions[worst])} is {psnr[worst]:.1f} dB PSNR from the source, "
                f"below image_psnr_floor_db {floor_db:g} (a wrong or corrupt image; lower "
                "image_psnr_floor_db only if the encoding is really that coarse)"
            )
    elif indices is not None:
        expected = source.take(indices)
        if not np.array_equal(got_images, expected):
            differs = (got_images != expected).reshape(count, -1).any(axis=1)
            position = int(np.flatnonzero(differs)[0])
            problems.append(f"image {int(indices[position])} differs from the source")
    else:
        first = source.matches(start, got_images)
        if first is not None:
            problems.append(f"image {first} differs from the source")
    if got_labels.shape != expected_labels.shape or not np.array_equal(got_labels, expected_labels):
        problems.append(
            f"labels differ (got shape {got_labels.shape}, expected {expected_labels.shape})"
        )
    if problems:
        raise VerificationError(
            f"{_name(method)} store read back wrong data: " + "; ".join(problems)
        )


def verify_whole(
    method: str, got: tuple[np.ndarray, np.ndarray], source, floor_db: float | None = None
) -> None:
    """A whole store read back into one array: every image, no more."""
    check_count(method, len(got[0]), len(source))
    verify(method, got, source, floor_db=floor_db)


def request_check(method: str, source, floor_db: float | None = None) -> RequestCheck:
    """``check(batch, request)`` for the readers: the batch must be the images at
    ``request`` (see ``verify``); ``check.many(pairs)`` checks many at once."""
    return RequestCheck(method, source, floor_db)


class RequestCheck:
    """The readers' check: each batch must be a fresh array of the images (and labels) at
    its request. ``many`` does the comparisons of many batches in one: 1,000 single-image
    requests took 10.5 ms checked one by one, 4.5 ms so; every batch is still checked
    for freshness, shape and type on its own, and a wrong one is named as ``verify``
    names it."""

    def __init__(self, method: str, source, floor_db: float | None = None):
        self.method, self.source, self.floor_db = method, source, floor_db

    def __call__(self, batch, request) -> None:
        verify(self.method, batch, self.source, indices=request, floor_db=self.floor_db)

    def many(self, pairs: list) -> None:
        """Check ``(batch, request)`` pairs."""
        if not pairs:
            return
        image_shape, dtype = tuple(self.source.shape[1:]), self.source.dtype
        for (images, labels), request in pairs:
            require_fresh(self.method, images, labels)
            count = len(request)
            if (
                not isinstance(images, np.ndarray)
                or not isinstance(labels, np.ndarray)
                or images.shape != (count, *image_shape)
                or images.dtype != dtype
                or labels.shape != (count,)
            ):
                self((images, labels), request)  # names what is wrong with it
        images = np.concatenate([batch[0] for batch, _ in pairs])
        labels = np.concatenate([batch[1] for batch, _ in pairs])
        indices = np.concatenate([np.asarray(request) for _, request in pairs])
        verify(self.method, (images, labels), self.source, indices=indices, floor_db=self.floor_db)


def store_psnr(
    module,
    store_dir: Path,
    source: pool.TiledImages,
    store_floor_db: float,
    image_floor_db: float,
) -> encoding.Fidelity:
    """The fidelity of a lossy store against its source (``encoding.Fidelity``: PSNR over
    all pixels, of the worst image, the 1st percentile of the images'), from one untimed
    epoch. A store below ``store_floor_db``, or an image below ``image_floor_db``, is a
    ``VerificationError`` that names the config key to change."""
    fidelity = encoding.Fidelity()
    for images, labels in module.read_batches(store_dir, source.chunk_images):
        position = fidelity.images
        fidelity.add(source.take(np.arange(position, position + len(images))), images)
        verify(module.__name__, (images, labels), source, start=position, floor_db=0.0)
    check_count(module.__name__, fidelity.images, len(source))
    name = _name(module.__name__)
    if fidelity.store_db < store_floor_db:
        raise VerificationError(
            f"the lossy {name} store is {fidelity.store_db:.1f} dB PSNR from its source over "
            f"all its pixels (worst image {fidelity.worst_db:.1f} dB), below "
            f"store_psnr_floor_db {store_floor_db:g}; raise the variant's quality (for "
            'JPEG, or use subsampling "4:4:4") or lower store_psnr_floor_db in the config'
        )
    if fidelity.worst_db < image_floor_db:
        raise VerificationError(
            f"the lossy {name} store's image {fidelity.worst_image()} is "
            f"{fidelity.worst_db:.1f} dB PSNR from its source, below image_psnr_floor_db "
            f"{image_floor_db:g}, where only a wrong or corrupt image falls; check the "
            "method's store and read, or lower image_psnr_floor_db if the encoding is that "
            "coarse"
        )
    return fidelity
