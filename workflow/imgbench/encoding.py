"""Image encodings a store can keep its images in: one place for every format that stores
encoded images (PNG files, LMDB values, WebDataset members, Parquet cells).

``raw``
    the pixel bytes as they are (H x W x C uint8, C order); the reader knows the shape
    from the store's metadata.
``png``
    lossless PNG through Pillow with zlib level ``compress_level`` (Pillow's default 6,
    also the article's).
``jpeg``
    lossy JPEG through Pillow (libjpeg-turbo) at ``quality`` (1-100) with Pillow's other
    defaults (4:2:0 chroma subsampling, baseline, no optimisation). A JPEG store is
    verified by a fidelity floor, not exactly: every image read back must reach
    ``psnr_floor_db`` of PSNR against the
    source (see ``measure``), and the store job records the store's PSNR.
``webp``
    WebP through Pillow (libwebp): ``lossless: true`` (the default) is exact and uses
    Pillow's default effort; ``lossless: false`` is lossy at ``quality`` and verified
    like JPEG.

A method that stores encoded images takes ``OPTIONS = {**encoding.options("png"), ...}``
and ``CHOICES = {**encoding.CHOICES, ...}``, encodes with ``encode(image, options)``,
records ``options["encoding"]`` in its store, and decodes with ``decode(data, encoding,
shape)``. Pillow is imported inside the functions (the method contract's lazy import).
"""

from __future__ import annotations

import io
import math

import numpy as np

ENCODINGS = ("raw", "png", "jpeg", "webp")
LOSSLESS_ENCODINGS = ("raw", "png")
# File name extensions (WebDataset member keys, image file names).
EXTENSIONS = {"raw": "raw", "png": "png", "jpeg": "jpg", "webp": "webp"}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# The least PSNR every image of a lossy store must keep (the config's psnr_floor_db):
# JPEG at quality 75 stays above it on photographs, an image of the wrong index is far
# below it.
PSNR_FLOOR_DB = 30.0

CHOICES = {
    "encoding": ENCODINGS,
    "quality": tuple(range(1, 101)),
    "lossless": (True, False),
    "compress_level": tuple(range(10)),
}


def options(default_encoding: str) -> dict:
    """The encoding options of a method whose images are ``default_encoding`` by default:
    ``quality`` 95 for JPEG and lossy WebP, ``lossless`` WebP, PNG ``compress_level`` 6."""
    if default_encoding not in ENCODINGS:
        raise ValueError(
            f"encoding must be one of {', '.join(ENCODINGS)}, not {default_encoding!r}"
        )
    return {"encoding": default_encoding, "quality": 95, "lossless": True, "compress_level": 6}


def is_lossy(options: dict) -> bool:
    """Whether images stored with ``options`` come back only approximately (JPEG, lossy
    WebP). Options without an ``encoding`` are raw pixels: exact."""
    name = options.get("encoding", "raw")
    return name == "jpeg" or (name == "webp" and not options.get("lossless", True))


def describe(options: dict) -> str:
    """A short label of the encoding: ``raw``, ``png``, ``jpeg q95``, ``webp lossless``."""
    name = options.get("encoding", "raw")
    if name == "jpeg":
        return f"jpeg q{options['quality']}"
    if name == "webp":
        return "webp lossless" if options.get("lossless", True) else f"webp q{options['quality']}"
    return name


def max_encoded_bytes(image_bytes: int, options: dict) -> int:
    """An upper bound of one encoded image's bytes (for the space check): raw is the
    pixels; PNG at most the pixels stored uncompressed (a filter byte per row, deflate's
    5 bytes per 64 KiB block, zlib's and PNG's framing); JPEG and WebP below twice the
    pixels plus headers even on noise at quality 100."""
    name = options.get("encoding", "raw")
    if name == "raw":
        return int(image_bytes)
    if name == "png":
        rows = math.isqrt(image_bytes // 3) + 1  # square RGB images
        raw = image_bytes + rows
        return raw + 5 * -(-raw // 65535) + 6 + 57 + 64
    return 2 * int(image_bytes) + 4096


def encode(image: np.ndarray, options: dict) -> bytes:
    """One (H, W, C) uint8 image in the encoding of ``options``."""
    name = options.get("encoding", "raw")
    if name == "raw":
        return np.ascontiguousarray(image).tobytes()
    from PIL import Image

    buffer = io.BytesIO()
    picture = Image.fromarray(image)
    if name == "png":
        picture.save(buffer, format="PNG", compress_level=options["compress_level"])
    elif name == "jpeg":
        picture.save(buffer, format="JPEG", quality=options["quality"])
    elif name == "webp":
        if options.get("lossless", True):
            picture.save(buffer, format="WEBP", lossless=True)
        else:
            picture.save(buffer, format="WEBP", lossless=False, quality=options["quality"])
    else:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {name!r}")
    return buffer.getvalue()


def decode(data, encoding: str, shape: tuple[int, ...]) -> np.ndarray:
    """The (H, W, C) uint8 pixels of ``data`` (bytes or a buffer) encoded as
    ``encoding``; ``shape`` is the store's image shape (raw needs it; the others are
    checked against it)."""
    shape = tuple(shape)
    if encoding == "raw":
        pixels = np.frombuffer(data, dtype=np.uint8)
        if pixels.size != math.prod(shape):
            raise ValueError(f"a raw image of {pixels.size} bytes is not of shape {shape}")
        return pixels.reshape(shape)
    if encoding not in PIL_FORMATS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=[PIL_FORMATS[encoding]]) as picture:
        pixels = np.asarray(picture)
    if pixels.shape != shape:
        raise ValueError(f"a decoded {encoding} image is {pixels.shape}, the store's are {shape}")
    return pixels


def psnr_db(expected: np.ndarray, got: np.ndarray) -> float:
    """Peak signal-to-noise ratio of ``got`` against ``expected`` (uint8, peak 255), in dB
    over all their pixels; ``inf`` when they are equal."""
    difference = expected.astype(np.float64) - got.astype(np.float64)
    mse = float(np.mean(difference * difference)) if difference.size else 0.0
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def psnr_per_image_db(expected: np.ndarray, got: np.ndarray) -> np.ndarray:
    """The PSNR of each image of (N, H, W, C) ``got`` against ``expected``, in dB."""
    difference = expected.astype(np.float64) - got.astype(np.float64)
    mse = (difference * difference).reshape(len(difference), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return np.where(mse == 0, math.inf, 10 * np.log10(255.0**2 / np.maximum(mse, 1e-300)))
