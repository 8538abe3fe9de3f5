"""Codecs: the libraries that encode a store's images and decode them when it is read
(option ``codec`` of every method that stores encoded images; ``encoding`` says what the
bytes are, ``codec`` which library writes and reads them).

``pillow`` (the default of PNG, JPEG, WebP and lossy AVIF)
    Pillow: PNG (zlib), JPEG (libjpeg-turbo), WebP (libwebp), QOI (a decoder written in
    Python: slow) and lossy AVIF (libavif; Pillow has no lossless AVIF).
``imagecodecs``
    imagecodecs: PNG (libpng), JPEG (libjpeg-turbo), WebP (libwebp), QOI (the reference C
    code; the default), JPEG XL (libjxl; the default, Pillow lacks it) and AVIF (libavif;
    lossless at quality 100, the default for lossless AVIF).
``opencv``
    OpenCV's ``cv2.imencode``/``cv2.imdecode`` (opencv-python-headless): PNG, JPEG, WebP.
    It decodes straight to RGB (``IMREAD_COLOR_RGB``) and encodes from RGB converted to
    its BGR, as a user of OpenCV does.
``simplejpeg``
    simplejpeg (libjpeg-turbo's TurboJPEG API): JPEG only.
``spng``
    libspng through imagecodecs (``spng_encode``/``spng_decode``): PNG only.

Every decoder and encoder runs on one thread (OpenCV ``cv2.setNumThreads(1)``, Pillow's
AVIF ``max_threads`` 1, imagecodecs' ``numthreads=1``; the others have no threads): the
unit of parallelism is the reader (``readers``, ``clients``), never a codec's own pool,
so one reader's figure is one core's and more readers add cores.

Encoders get the same settings whatever the codec: PNG ``compress_level`` (zlib level),
JPEG ``quality`` and chroma ``subsampling``, WebP ``lossless`` or ``quality`` (lossless
at Pillow's default effort: quality 80, method 4), JPEG XL ``lossless`` or ``quality``
at ``effort`` (libjxl's 1-10; default 7), AVIF ``quality`` at 4:4:4 chroma and speed 6
(libavif's default speed; ``lossless`` through imagecodecs only).

A codec's library is imported in the first ``encoder``/``decoder`` call of a process,
which a job makes in its warm-up, outside every timed region; ``versions(codec)`` says
what it runs on for the provenance.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable

import numpy as np

CODECS = ("pillow", "imagecodecs", "opencv", "simplejpeg", "spng")
# The codec of raw pixels and of methods that store no encoded images.
NO_CODEC = "none"
# The default codec of each encoding: Pillow, the only codec before there was a choice,
# except where it lacks the encoding (JPEG XL, lossless AVIF) or is far slower: Pillow's
# QOI is written in Python (decoding a 256x256 photograph took 78.6 ms against 0.41 ms
# through imagecodecs on the 2-core VM of docs/codecs.md).
DEFAULTS = {"png": "pillow", "jpeg": "pillow", "webp": "pillow", "avif": "pillow"}
DEFAULTS |= {"qoi": "imagecodecs", "jpegxl": "imagecodecs"}
# The pip distribution each codec is (its version goes in the provenance).
PACKAGES = {
    "pillow": "Pillow",
    "imagecodecs": "imagecodecs",
    "opencv": "opencv-python-headless",
    "simplejpeg": "simplejpeg",
    "spng": "imagecodecs",
}
# How the read paths name each codec (``read_path``: "... png decoded with Pillow").
NAMES = {
    "pillow": "Pillow",
    "imagecodecs": "imagecodecs",
    "opencv": "OpenCV",
    "simplejpeg": "simplejpeg",
    "spng": "libspng",
}
LOSSLESS, LOSSY = "lossless", "lossy"
BOTH = frozenset({LOSSLESS, LOSSY})
# What each codec encodes and decodes: encoding -> the modes it has.
SUPPORTS = {
    "pillow": {
        "png": {LOSSLESS},
        "jpeg": {LOSSY},
        "webp": BOTH,
        "qoi": {LOSSLESS},
        "avif": {LOSSY},
    },
    "imagecodecs": {
        "png": {LOSSLESS},
        "jpeg": {LOSSY},
        "webp": BOTH,
        "qoi": {LOSSLESS},
        "jpegxl": BOTH,
        "avif": BOTH,
    },
    "opencv": {"png": {LOSSLESS}, "jpeg": {LOSSY}, "webp": BOTH},
    "simplejpeg": {"jpeg": {LOSSY}},
    "spng": {"png": {LOSSLESS}},
}
# libavif's default speed (0 slowest/smallest to 10), pinned so both codecs encode alike.
AVIF_SPEED = 6
# libjxl's default effort (1 fastest to 10).
JPEGXL_EFFORT = 7
# WebP lossless effort: Pillow's defaults (quality 80, method 4), for every codec.
WEBP_LOSSLESS_QUALITY, WEBP_METHOD = 80, 4
JPEG_SUBSAMPLING = {"4:4:4": "444", "4:2:2": "422", "4:2:0": "420"}


def mode(encoding: str, lossless: bool) -> str:
    """``lossless`` or ``lossy``: what a store of ``encoding`` with option ``lossless``
    keeps (PNG and QOI are always lossless, JPEG always lossy)."""
    modes = {m for each in SUPPORTS.values() for m in each.get(encoding, ())}
    if modes == {LOSSLESS}:
        return LOSSLESS
    if modes == {LOSSY}:
        return LOSSY
    return LOSSLESS if lossless else LOSSY


def codecs_for(encoding: str, lossless: bool) -> tuple[str, ...]:
    """The codecs that encode and decode ``encoding`` in the mode ``lossless`` gives."""
    wanted = mode(encoding, lossless)
    return tuple(c for c in CODECS if wanted in SUPPORTS[c].get(encoding, ()))


def default_codec(encoding: str, lossless: bool) -> str:
    """The codec of a store of ``encoding`` whose options name none."""
    if encoding == "raw":
        return NO_CODEC
    have = codecs_for(encoding, lossless)
    return DEFAULTS[encoding] if DEFAULTS[encoding] in have else have[0]


def problem(encoding: str, lossless: bool, codec: str | None) -> str | None:
    """Why ``codec`` cannot store ``encoding`` (in the mode ``lossless`` gives), as the
    rule its option breaks (``a codec that has jpegxl lossless: imagecodecs``); ``None``
    when it can (or names none)."""
    if codec in (None, NO_CODEC):
        return None
    if encoding == "raw":
        return "null with encoding raw, which keeps the pixels as they are (no codec)"
    have = codecs_for(encoding, lossless)
    if codec in have:
        return None
    both = len({m for each in SUPPORTS.values() for m in each.get(encoding, ())}) > 1
    what = f"{encoding} {mode(encoding, lossless)}" if both else encoding
    return f"a codec that has {what}: {', '.join(have)}"


def resolve(options: dict) -> str:
    """The codec of complete encoding ``options``: their ``codec``, or the default of
    their encoding (``NO_CODEC`` for raw). Call ``problem`` first."""
    encoding = options.get("encoding", "raw")
    codec = options.get("codec")
    if encoding == "raw":
        return NO_CODEC
    if codec in (None, NO_CODEC):
        return default_codec(encoding, options.get("lossless", True))
    return codec


# --- the libraries ---------------------------------------------------------------------------


@functools.cache
def _setup(codec: str):
    """Import ``codec``'s library once per process and make it single-threaded; the module
    it works through."""
    if codec == "pillow":
        from PIL import Image, features

        if features.check("avif"):
            from PIL import AvifImagePlugin

            AvifImagePlugin.DEFAULT_MAX_THREADS = 1  # decoding too
        return Image
    if codec in ("imagecodecs", "spng"):
        import imagecodecs

        return imagecodecs
    if codec == "opencv":
        import cv2

        cv2.setNumThreads(1)
        return cv2
    if codec == "simplejpeg":
        import simplejpeg

        return simplejpeg
    raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {codec!r}")


def _pillow_encoder(encoding: str, options: dict) -> Callable[[np.ndarray], bytes]:
    Image = _setup("pillow")
    if encoding == "png":
        settings = {"format": "PNG", "compress_level": options["compress_level"]}
    elif encoding == "jpeg":
        chroma = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}[options["subsampling"]]
        settings = {"format": "JPEG", "quality": options["quality"], "subsampling": chroma}
    elif encoding == "webp" and options["lossless"]:
        settings = {"format": "WEBP", "lossless": True}
    elif encoding == "webp":
        settings = {"format": "WEBP", "lossless": False, "quality": options["quality"]}
    elif encoding == "qoi":
        settings = {"format": "QOI"}
    else:  # avif, lossy
        settings = {
            "format": "AVIF",
            "quality": options["quality"],
            "subsampling": "4:4:4",
            "speed": AVIF_SPEED,
            "max_threads": 1,
        }

    def encode(image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, **settings)
        return buffer.getvalue()

    return encode


PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "qoi": "QOI", "avif": "AVIF"}


def _pillow_decoder(encoding: str) -> Callable:
    Image = _setup("pillow")
    formats = [PIL_FORMATS[encoding]]

    def decode(data) -> np.ndarray:
        with Image.open(io.BytesIO(data), formats=formats) as picture:
            return np.asarray(picture)

    return decode


def _imagecodecs_encoder(encoding: str, options: dict) -> Callable[[np.ndarray], bytes]:
    ic = _setup("imagecodecs")
    lossless = options["lossless"]
    if encoding == "png":
        return functools.partial(ic.png_encode, level=options["compress_level"])
    if encoding == "jpeg":
        chroma = JPEG_SUBSAMPLING[options["subsampling"]]
        return functools.partial(ic.jpeg8_encode, level=options["quality"], subsampling=chroma)
    if encoding == "webp":
        level = WEBP_LOSSLESS_QUALITY if lossless else options["quality"]
        return functools.partial(
            ic.webp_encode, level=level, lossless=lossless, method=WEBP_METHOD, numthreads=1
        )
    if encoding == "qoi":
        return ic.qoi_encode
    if encoding == "jpegxl":
        effort = options.get("effort") or JPEGXL_EFFORT
        if lossless:
            return functools.partial(ic.jpegxl_encode, lossless=True, effort=effort, numthreads=1)
        return functools.partial(
            ic.jpegxl_encode, level=options["quality"], effort=effort, numthreads=1
        )
    level = 100 if lossless else options["quality"]  # avif; 100 is libavif's lossless
    return functools.partial(
        ic.avif_encode, level=level, speed=AVIF_SPEED, pixelformat="yuv444", numthreads=1
    )


def _imagecodecs_decoder(encoding: str) -> Callable:
    ic = _setup("imagecodecs")
    if encoding in ("jpegxl", "avif"):
        return functools.partial(getattr(ic, f"{encoding}_decode"), numthreads=1)
    plain = {
        "png": ic.png_decode,
        "jpeg": ic.jpeg8_decode,
        "webp": ic.webp_decode,
        "qoi": ic.qoi_decode,
    }
    return plain[encoding]


def _opencv_encoder(encoding: str, options: dict) -> Callable[[np.ndarray], bytes]:
    cv2 = _setup("opencv")
    if encoding == "png":
        extension, params = ".png", [cv2.IMWRITE_PNG_COMPRESSION, options["compress_level"]]
    elif encoding == "jpeg":
        factor = getattr(
            cv2, f"IMWRITE_JPEG_SAMPLING_FACTOR_{JPEG_SUBSAMPLING[options['subsampling']]}"
        )
        params = [
            cv2.IMWRITE_JPEG_QUALITY,
            options["quality"],
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            factor,
        ]
        extension = ".jpg"
    else:  # webp: a quality above 100 is OpenCV's lossless
        quality = 101 if options["lossless"] else options["quality"]
        extension, params = ".webp", [cv2.IMWRITE_WEBP_QUALITY, quality]

    def encode(image: np.ndarray) -> bytes:
        ok, data = cv2.imencode(extension, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise ValueError(f"OpenCV could not encode an image as {encoding}")
        return data.tobytes()

    return encode


def _opencv_decoder(encoding: str) -> Callable:
    cv2 = _setup("opencv")

    def decode(data) -> np.ndarray:
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR_RGB)
        if pixels is None:
            raise ValueError(f"OpenCV could not decode a {encoding} image")
        return pixels

    return decode


def _simplejpeg_encoder(encoding: str, options: dict) -> Callable[[np.ndarray], bytes]:
    simplejpeg = _setup("simplejpeg")
    chroma = JPEG_SUBSAMPLING[options["subsampling"]]

    def encode(image: np.ndarray) -> bytes:
        return simplejpeg.encode_jpeg(
            np.ascontiguousarray(image),
            quality=options["quality"],
            colorspace="RGB",
            colorsubsampling=chroma,
        )

    return encode


def _simplejpeg_decoder(encoding: str) -> Callable:
    simplejpeg = _setup("simplejpeg")
    return functools.partial(simplejpeg.decode_jpeg, colorspace="RGB")


def _spng_encoder(encoding: str, options: dict) -> Callable[[np.ndarray], bytes]:
    return functools.partial(_setup("spng").spng_encode, level=options["compress_level"])


def _spng_decoder(encoding: str) -> Callable:
    return _setup("spng").spng_decode


_ENCODERS = {
    "pillow": _pillow_encoder,
    "imagecodecs": _imagecodecs_encoder,
    "opencv": _opencv_encoder,
    "simplejpeg": _simplejpeg_encoder,
    "spng": _spng_encoder,
}
_DECODERS = {
    "pillow": _pillow_decoder,
    "imagecodecs": _imagecodecs_decoder,
    "opencv": _opencv_decoder,
    "simplejpeg": _simplejpeg_decoder,
    "spng": _spng_decoder,
}


def _check(codec: str, encoding: str, lossless: bool) -> None:
    if codec not in SUPPORTS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {codec!r}")
    wrong = problem(encoding, lossless, codec)
    if wrong:
        raise ValueError(f"codec {codec} cannot store {encoding}; use {wrong}")


def encoder(options: dict) -> Callable[[np.ndarray], bytes]:
    """The function that encodes one (H, W, C) uint8 image as complete ``options`` say
    (``encoding``, its settings, ``codec``; subsampling already resolved)."""
    encoding, codec = options["encoding"], resolve(options)
    _check(codec, encoding, options.get("lossless", True))
    return _ENCODERS[codec](encoding, options)


@functools.cache
def decoder(encoding: str, codec: str) -> Callable:
    """The function that decodes the bytes (or buffer) of one ``encoding`` image with
    ``codec`` into a fresh (H, W, C) uint8 array; one per process and pair."""
    if codec not in _DECODERS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {codec!r}")
    if encoding not in SUPPORTS[codec]:
        have = ", ".join(c for c in CODECS if encoding in SUPPORTS[c])
        raise ValueError(f"codec {codec} cannot decode {encoding}; use one of {have}")
    return _DECODERS[codec](encoding)


# --- provenance ---------------------------------------------------------------------------

# The libraries under each codec the provenance names (imagecodecs' names).
IMAGECODECS_LIBRARIES = ("libpng", "libjpeg_turbo", "libwebp", "qoi", "libjxl", "libavif")
PILLOW_LIBRARIES = {
    "zlib": "zlib",
    "libjpeg_turbo": "libjpeg_turbo",
    "libwebp": "webp",
    "libavif": "avif",
}


def versions(codec: str) -> dict:
    """What ``codec`` runs on: ``codec`` itself, its package's version and those of the
    codec libraries under it (``{"codec": "imagecodecs", "imagecodecs": "2026.3.6",
    "imagecodecs.libjxl": "0.11.2", ...}``). Imports the codec's library."""
    from importlib import metadata

    if codec == NO_CODEC:
        return {}
    package = PACKAGES[codec]
    found = {"codec": codec, package.lower(): metadata.version(package)}
    module = _setup(codec)
    if codec == "pillow":
        from PIL import features

        for name, feature in PILLOW_LIBRARIES.items():
            try:
                version = features.version(feature)
            except ValueError:
                version = None
            if version:
                found[f"pillow.{name}"] = version
    elif codec in ("imagecodecs", "spng"):
        libraries = module.version(dict)
        wanted = ("libspng",) if codec == "spng" else IMAGECODECS_LIBRARIES
        found.update({f"imagecodecs.{n}": libraries[n] for n in wanted if n in libraries})
    elif codec == "opencv":
        info = module.getBuildInformation()
        for name in ("JPEG", "PNG", "WEBP", "ZLib"):
            match = re.search(rf"^\s*{name}:\s*(.*)$", info, re.MULTILINE)
            if match:
                found[f"opencv.{name.lower()}"] = match[1].strip()
    return found
