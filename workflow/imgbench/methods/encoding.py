"""Image encodings a store can keep its images in: one place for every format that stores
encoded images (PNG files, LMDB values, WebDataset members, Parquet cells).

``raw``
    the pixel bytes as they are (H x W x C uint8, C order); the reader knows the shape
    from the store's metadata.
``png``
    lossless PNG through Pillow with zlib level ``compress_level`` (Pillow's default 6,
    also the article's).
``jpeg``
    lossy JPEG through Pillow (libjpeg-turbo) at ``quality`` (1-100) with chroma
    ``subsampling`` ``4:4:4`` (full colour resolution; the default, which ``null``
    stands for), ``4:2:2`` or ``4:2:0`` (Pillow's own default: colour at half the
    resolution both ways), and Pillow's other defaults (baseline, no optimisation). On
    32x32 images 4:2:0 costs the worst images 10 dB or more and saves only 12 % of the
    bytes (see ``SUBSAMPLING``).
``webp``
    WebP through Pillow (libwebp): ``lossless: true`` (the default) is exact and uses
    Pillow's default effort; ``lossless: false`` is lossy at ``quality`` (libwebp's lossy
    mode always keeps colour at 4:2:0).

A lossy store (JPEG, lossy WebP) is verified by fidelity, not exactly (see
``harness.verification``): the store job reads it back once and stops the run when the
whole store's PSNR against its source (``Fidelity.store_db``, over all pixels) is below
the config's ``store_psnr_floor_db``, recording the store's PSNR, its worst image's and
the 1st percentile of its images'; every read checks each image against the much lower
``image_psnr_floor_db``, which an image of a faithful encoding passes and a wrong or
corrupt image fails.

``qoi``
    lossless QOI ("Quite OK Image"): byte-wise run and index coding, no entropy coder;
    larger than PNG, made to encode and decode fast.
``jpegxl``
    JPEG XL (libjxl): ``lossless: true`` (the default) is exact (modular mode);
    ``lossless: false`` is lossy at ``quality`` (libjxl maps it to a distance). Both at
    ``effort`` (1-10, ``null``: libjxl's 7).
``avif``
    AVIF (libavif, AV1 intra): ``lossless: false`` is lossy at ``quality`` with chroma at
    4:4:4; ``lossless: true`` is exact (imagecodecs only).

Which library encodes and decodes is option ``codec`` (``imgbench.methods.codecs``:
``pillow``, ``imagecodecs``, ``opencv``, ``simplejpeg``, ``spng``; ``null``: the encoding's
default, ``codecs.DEFAULTS``: Pillow, but imagecodecs for QOI, JPEG XL and lossless
AVIF). A codec that lacks the encoding is refused when the config is validated
(``resolve_codec``).

A method that stores encoded images takes ``OPTIONS = {**encoding.options("png"), ...}``
and ``CHOICES = {**encoding.CHOICES, ...}``, encodes with ``encoder(options)`` (one
function per store) or ``encode(image, options)``, records ``options["encoding"]`` and
``options["codec"]`` in its store (``store_fields(options)``), and decodes with
``decode(data, encoding, shape, codec)``. The codec libraries are imported inside the
functions (the method contract's lazy import).
"""

from __future__ import annotations

import math

import numpy as np

from imgbench.methods import codecs
from imgbench.methods._base import OptionError

ENCODINGS = ("raw", "png", "jpeg", "webp", "qoi", "jpegxl", "avif")
LOSSLESS_ENCODINGS = ("raw", "png", "qoi")
# File name extensions (WebDataset member keys, image file names).
EXTENSIONS = {
    "raw": "raw",
    "png": "png",
    "jpeg": "jpg",
    "webp": "webp",
    "qoi": "qoi",
    "jpegxl": "jxl",
    "avif": "avif",
}
# JPEG chroma subsampling as the config names it -> Pillow's ``subsampling`` argument.
SUBSAMPLINGS = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
# The default (option ``subsampling: null``), from 5,085 real CIFAR-10 images at quality
# 95: 4:4:4 gives a store PSNR of 39.9 dB and a worst image of 36.3 dB at 1,478 bytes per
# image; 4:2:0 gives 35.2 dB and 24.5 dB at 1,300 bytes (4:4:4 at quality 90 beats 4:2:0
# at 95 in bytes and PSNR).
SUBSAMPLING = "4:4:4"
# Options that mean something for one encoding only: setting them (to anything but null)
# with another encoding is an error.
ONLY_FOR_ENCODING = {"subsampling": "jpeg", "effort": "jpegxl"}
# The least PSNR (dB) of a lossy store as a whole (the config's store_psnr_floor_db):
# on CIFAR-10, JPEG at quality 75 stays above it with 4:2:0 (29.9 dB) and 4:4:4 (31.8),
# lossy WebP from quality 40 (28.9); JPEG 4:2:0 at quality 50 (27.9) falls below.
STORE_PSNR_FLOOR_DB = 28.0
# The least PSNR (dB) of each image read back (the config's image_psnr_floor_db), a
# catcher of wrong or corrupt images: the worst CIFAR-10 image of JPEG 4:2:0 at quality
# 20 is 19.4 dB, at quality 75 22.9 dB; another image of the pool is at most 17.5 dB
# from an image (median 9.5 dB), uniform noise at most 10.5 dB.
IMAGE_PSNR_FLOOR_DB = 18.0
# The low percentile of per-image PSNR the store rows record (``psnr_p01_db``).
LOW_PERCENTILE = 1

CHOICES = {
    "encoding": ENCODINGS,
    "quality": tuple(range(1, 101)),
    "lossless": (True, False),
    "compress_level": tuple(range(10)),
    "subsampling": (None, *SUBSAMPLINGS),
    "effort": (None, *range(1, 11)),
    "codec": (None, codecs.NO_CODEC, *codecs.CODECS),
}


def options(default_encoding: str) -> dict:
    """The encoding options of a method whose images are ``default_encoding`` by default:
    ``quality`` 95 for JPEG and lossy WebP, JPEG XL and AVIF, JPEG ``subsampling``
    ``None`` (``SUBSAMPLING``, 4:4:4), ``lossless`` WebP and JPEG XL, PNG
    ``compress_level`` 6, JPEG XL ``effort`` ``None`` (libjxl's 7), ``codec`` ``None``
    (the encoding's default codec, ``codecs.default_codec``)."""
    if default_encoding not in ENCODINGS:
        raise ValueError(
            f"encoding must be one of {', '.join(ENCODINGS)}, not {default_encoding!r}"
        )
    return {
        "encoding": default_encoding,
        "quality": 95,
        "subsampling": None,
        "lossless": True,
        "compress_level": 6,
        "effort": None,
        "codec": None,
    }


def misplaced_options(given: dict, resolved: dict) -> str | None:
    """What is wrong with options ``given`` for another encoding than their own (JPEG's
    ``subsampling`` for PNG, say), as a phrase; ``None`` when nothing is. ``resolved``
    are the complete options (the encoding they store with)."""
    name = resolved.get("encoding", "raw")
    wrong = [
        option
        for option, only in ONLY_FOR_ENCODING.items()
        if given.get(option) is not None and only != name
    ]
    if not wrong:
        return None
    needs = " and ".join(f"{o} applies only to encoding {ONLY_FOR_ENCODING[o]}" for o in wrong)
    return f"option {needs}, not {name}"


def resolve_codec(method: str, options: dict) -> dict:
    """Complete ``options`` with their codec resolved (``codecs.resolve``: the one named,
    the encoding's default, or ``none`` for raw); an ``OptionError`` when the codec named
    lacks the encoding. Options without an ``encoding`` are returned as they are."""
    if "encoding" not in options or "codec" not in options:
        return options
    name, lossless = options["encoding"], options.get("lossless", True)
    rule = codecs.problem(name, lossless, options["codec"])
    if rule:
        have = codecs.codecs_for(name, lossless)
        if name == "raw":
            fix = "remove codec"
        else:
            default = codecs.default_codec(name, lossless)
            fix = f"set codec to {' or '.join(have)} or remove it (default {default})"
            if codecs.codecs_for(name, not lossless) != have and options["codec"] in (
                codecs.codecs_for(name, not lossless)
            ):
                fix += f", or set lossless: {str(not lossless).lower()}"
        raise OptionError(method, "codec", options["codec"], rule, fix)
    return {**options, "codec": codecs.resolve(options)}


def codec_of(options: dict) -> str:
    """The codec a store written with ``options`` uses (``none`` for raw pixels and for
    methods without an encoding)."""
    if "encoding" not in options:
        return codecs.NO_CODEC
    return codecs.resolve(options)


def codec_name(options: dict) -> str:
    """The library of ``options``' codec as a read path names it (``Pillow``, ``OpenCV``,
    ``libspng``)."""
    codec = codec_of(options)
    return codecs.NAMES.get(codec, codec)


def store_fields(options: dict) -> dict:
    """What a store records of its encoding for its reader: ``encoding`` and ``codec``."""
    return {"encoding": options["encoding"], "codec": codec_of(options)}


def subsampling(options: dict) -> str:
    """The JPEG chroma subsampling of ``options``: theirs, or ``SUBSAMPLING``."""
    return options.get("subsampling") or SUBSAMPLING


def subsampling_from_yaml(value):
    """JPEG ``subsampling`` as the config names it. YAML 1.1 reads an unquoted ``4:2:0``
    as the base-60 number 14520 (4*3600 + 2*60 + 0); such a number becomes ``"4:2:0"``
    again, anything else is returned as it is (for the choices check)."""
    if type(value) is not int or value < 3600:
        return value
    hours, rest = divmod(value, 3600)
    return f"{hours}:{rest // 60}:{rest % 60}"


def is_lossy(options: dict) -> bool:
    """Whether images stored with ``options`` come back only approximately (JPEG; WebP,
    JPEG XL and AVIF with ``lossless: false``). Options without an ``encoding`` are raw
    pixels: exact."""
    name = options.get("encoding", "raw")
    if name == "raw":
        return False
    return codecs.mode(name, options.get("lossless", True)) == codecs.LOSSY


def describe(options: dict) -> str:
    """A short label of the encoding: ``raw``, ``png``, ``qoi``, ``jpeg q95 4:4:4``,
    ``webp lossless``, ``webp q80``, ``jpegxl lossless e7``, ``jpegxl q90 e7``, ``avif
    lossless``, ``avif q80``. The codec is not in it (rows carry it as ``codec``)."""
    name = options.get("encoding", "raw")
    if name == "jpeg":
        return f"jpeg q{options['quality']} {subsampling(options)}"
    if name in ("webp", "jpegxl", "avif"):
        label = (
            f"{name} lossless" if options.get("lossless", True) else f"{name} q{options['quality']}"
        )
        if name == "jpegxl":
            label += f" e{options.get('effort') or codecs.JPEGXL_EFFORT}"
        return label
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


def _raw_bytes(image: np.ndarray) -> bytes:
    return np.ascontiguousarray(image).tobytes()


def encoder(options: dict):
    """The function that encodes one (H, W, C) uint8 image in the encoding of
    ``options`` with their codec (made once per store: the codec's settings are looked up
    here, not per image)."""
    name = options.get("encoding", "raw")
    if name == "raw":
        return _raw_bytes
    if name not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {name!r}")
    settings = {
        **options,
        "subsampling": subsampling(options),
        "lossless": options.get("lossless", True),
        "codec": codecs.resolve(options),
    }
    return codecs.encoder(settings)


def encode(image: np.ndarray, options: dict) -> bytes:
    """One (H, W, C) uint8 image in the encoding of ``options`` (``encoder(options)``
    applied once)."""
    return encoder(options)(image)


def decode(data, encoding: str, shape: tuple[int, ...], codec: str | None = None) -> np.ndarray:
    """The (H, W, C) uint8 pixels of ``data`` (bytes or a buffer) encoded as ``encoding``,
    decoded with ``codec`` (``None``: Pillow, which wrote every store that records no
    codec); ``shape`` is the store's image shape
    (raw needs it; the others are checked against it)."""
    shape = tuple(shape)
    if encoding == "raw":
        pixels = np.frombuffer(data, dtype=np.uint8)
        if pixels.size != math.prod(shape):
            raise ValueError(f"a raw image of {pixels.size} bytes is not of shape {shape}")
        return pixels.reshape(shape)
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    if codec in (None, codecs.NO_CODEC):
        codec = "pillow"
    pixels = codecs.decoder(encoding, codec)(data)
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


class Fidelity:
    """How close a lossy store's images are to their source, gathered batch by batch:
    the store's PSNR over all pixels (``store_db``), its worst image's (``worst_db``) and
    the ``LOW_PERCENTILE`` of its images' (``low_percentile_db``, an image's own value, no
    interpolation). Holds one number per image, never the images."""

    def __init__(self):
        self.squared_error = 0.0
        self.values = 0
        self.per_image: list[np.ndarray] = []

    def add(self, expected: np.ndarray, got: np.ndarray) -> None:
        """Count a batch of (N, H, W, C) images ``got`` read back for ``expected``."""
        difference = expected.astype(np.float64) - got.astype(np.float64)
        self.squared_error += float(np.sum(difference * difference))
        self.values += difference.size
        self.per_image.append(psnr_per_image_db(expected, got))

    @property
    def images(self) -> int:
        return sum(len(values) for values in self.per_image)

    @property
    def store_db(self) -> float:
        if self.squared_error == 0:
            return math.inf
        return 10 * math.log10(255.0**2 * self.values / self.squared_error)

    @property
    def worst_db(self) -> float:
        return float(np.concatenate(self.per_image).min()) if self.images else math.inf

    def worst_image(self) -> int:
        """The position (in the order added) of the worst image."""
        return int(np.argmin(np.concatenate(self.per_image)))

    @property
    def low_percentile_db(self) -> float:
        if not self.images:
            return math.inf
        values = np.concatenate(self.per_image)
        return float(np.percentile(values, LOW_PERCENTILE, method="lower"))
