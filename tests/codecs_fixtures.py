"""Hand-made rows of a codec run, shared by the unit tests of the codec table (the
summary's "Codecs" section) and of the codecs figure.

Every series of ``SERIES`` is stored at 32x32 with 10 and 100 images, three stores each,
and read warm (whole store and shuffled, one reader) and cold (whole store); each store
moves its images/s by ``FACTORS`` (so a point's interval over the three stores is its
median x 0.98 to x 1.02) and its bytes on disk by ``STORE_BYTES``. lmdb keeps PNG by
three codecs (opencv reads clearly fastest, spng is clearly smallest), JPEG q95 by two
codecs within each other's intervals, QOI (the fastest-reading lossless encoding) and raw
pixels (no codec); png keeps QOI and lossless WebP (clearly smaller, read as fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd
from results_fixtures import FACTORS, T0, row

from imgbench.results import footprint, load, points


class Encoded(NamedTuple):
    encoding: str
    codec: str
    bytes_per_image: int
    store: float  # images/s of the store (encode + write)
    whole: float  # images/s of the warm whole-store read
    shuffled: float  # images/s of the warm shuffled read
    psnr: tuple[float, float] | None = None  # lossy: (store PSNR, worst image's), per store


JPEG = "jpeg q95 4:4:4"
SERIES = {
    ("lmdb", "png_pillow"): Encoded("png", "pillow", 2000, 5000.0, 20000.0, 15000.0),
    ("lmdb", "png_opencv"): Encoded("png", "opencv", 2100, 9000.0, 40000.0, 30000.0),
    ("lmdb", "png_spng"): Encoded("png", "spng", 1900, 6000.0, 25000.0, 19000.0),
    ("lmdb", "jpeg95_pillow"): Encoded(
        JPEG, "pillow", 1400, 8000.0, 30000.0, 24000.0, (39.9, 36.3)
    ),
    ("lmdb", "jpeg95_simplejpeg"): Encoded(
        JPEG, "simplejpeg", 1400, 8100.0, 30300.0, 24200.0, (39.8, 36.1)
    ),
    ("lmdb", "qoi"): Encoded("qoi", "imagecodecs", 2600, 20000.0, 90000.0, 60000.0),
    ("lmdb", "default"): Encoded("raw", "none", 3072, 50000.0, 200000.0, 150000.0),
    ("png", "qoi"): Encoded("qoi", "imagecodecs", 2700, 900.0, 3000.0, 2000.0),
    ("png", "webp"): Encoded("webp lossless", "pillow", 1500, 300.0, 3020.0, 2010.0),
}
CUTOFFS = (10, 100)
SIZE = 32
STORE_BYTES = (0, 4096, 0)  # added to each store's bytes on disk
PSNR_STEP = (0.0, 0.1, -0.1)  # added to each store's PSNR and worst image's
# (operation, cache, read pattern) of each store's timed operations; the field of
# ``Encoded`` with their images/s (a cold read at half the warm whole read's).
OPERATIONS = (
    ("store", "n/a", "n/a"),
    ("read", "warm", "whole"),
    ("read", "warm", "shuffled"),
    ("read", "cold", "whole"),
)


def name(method: str, variant: str) -> str:
    return method if variant == "default" else f"{method}:{variant}"


def _speed(series: Encoded, operation: str, cache: str, pattern: str) -> float:
    if operation == "store":
        return series.store
    speed = series.shuffled if pattern == "shuffled" else series.whole
    return speed / 2 if cache == "cold" else speed


def codec_rows(series: dict = SERIES, *, busy: frozenset = frozenset()) -> list[dict]:
    """Rows of the codec run: one timed operation per series, cutoff, store and
    operation of ``OPERATIONS``; series (``name``) in ``busy`` ran beside others' CPU
    work at the largest cutoff."""
    rows = []
    clock = T0
    for (method, variant), spec in series.items():
        for cutoff in CUTOFFS:
            for repeat, scale in enumerate(FACTORS, start=1):
                on_disk = spec.bytes_per_image * cutoff + STORE_BYTES[repeat - 1]
                for operation, cache, pattern in OPERATIONS:
                    seconds = cutoff / (_speed(spec, operation, cache, pattern) * scale)
                    is_busy = name(method, variant) in busy and cutoff == max(CUTOFFS)
                    fields = {
                        "method": method,
                        "variant": variant,
                        "image_size": SIZE,
                        "operation": operation,
                        "cutoff": cutoff,
                        "repeat": repeat,
                        "cache": cache,
                        "read_pattern": pattern,
                        "images_read": cutoff,
                        "seconds": seconds,
                        "bytes_on_disk": on_disk,
                        "bytes_apparent": on_disk,
                        "n_files": 2,
                        "encoding": spec.encoding,
                        "codec": spec.codec,
                        "lossy": spec.psnr is not None,
                        "foreign_cpu_seconds": 0.9 * seconds if is_busy else 0.0,
                        "foreign_cpu_resolution_seconds": 0.0,
                        "foreign_cpu_span_seconds": seconds,
                        "t_start_unix": clock,
                        "t_end_unix": clock + seconds,
                    }
                    if operation == "store":
                        fields.update(
                            readahead="n/a",
                            batch_size="",
                            seed="",
                            write_seconds=seconds * 0.75,
                            flush_seconds=seconds * 0.25,
                        )
                        if spec.psnr is not None:
                            step = PSNR_STEP[repeat - 1]
                            fields.update(
                                psnr_db=spec.psnr[0] + step,
                                psnr_min_db=spec.psnr[1] + step,
                                psnr_p01_db=spec.psnr[1] + 1.0 + step,
                            )
                    else:
                        cold = cache == "cold"
                        fields.update(
                            eviction="fadvise" if cold else "none",
                            bytes_requested=cutoff * 3072,
                            device_read_bytes=on_disk if cold else 0,
                            cached_fraction=0.0 if cold else 1.0,
                        )
                    rows.append(row(**fields))
                    clock += seconds + 1.0
    return rows


def write_codec_rows(rows: list[dict], path: Path, *, drop: tuple[str, ...] = ()) -> Path:
    """The rows as one timings CSV with every column they carry (``codec`` too, whether
    or not the harness writes it yet), less ``drop``: as a run written before those
    columns existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).drop(columns=list(drop)).to_csv(path, index=False)
    return path


def codec_tables(tmp_path: Path, rows: list[dict], *, drop: tuple[str, ...] = ()):
    """Rows, statistics and disk usage of ``rows``, as the aggregate step makes them."""
    loaded = load.load_rows([write_codec_rows(rows, tmp_path / "timings.csv", drop=drop)])
    return loaded, points.summarise(loaded), footprint.disk_usage_table(loaded)


def per_image(method: str, variant: str, cutoff: int = max(CUTOFFS)) -> float:
    """Median bytes on disk per image of a series' stores (``STORE_BYTES`` median 0)."""
    return SERIES[(method, variant)].bytes_per_image + sorted(STORE_BYTES)[1] / cutoff
