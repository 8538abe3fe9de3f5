"""An example image folder of real photographs: random crops of the photographs that
scikit-image ships (``skimage.data``; no download), one class folder per photograph.

Each crop has a random side between ``min_fraction`` and ``max_fraction`` of its
photograph's short side (at least ``min_side`` pixels), a random aspect ratio between
3:4 and 4:3 and a random position, so sizes and shapes vary as a camera folder's do and
the loader's resize-and-crop policy has work to do. Most crops are saved as JPEG
(quality 95, like a camera), ``png_fraction`` of them as PNG; the grayscale photographs
are saved as grayscale files. Classes take turns, so they are balanced. Everything comes
from one seeded generator: the same seed gives the same files, byte for byte, with the
same Pillow.

    imgbench photos photos --count 2000 --seed 0

(``python -m imgbench.data.photos`` with ``workflow`` on ``PYTHONPATH`` does the same.)
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def _skimage(name: str) -> Callable[[], list[np.ndarray]]:
    def load() -> list[np.ndarray]:
        import skimage.data

        return [getattr(skimage.data, name)()]

    return load


def _motorcycle() -> list[np.ndarray]:
    import skimage.data

    left, right, _ = skimage.data.stereo_motorcycle()
    return [left, right]


# Class name -> the photograph(s) of that class (the stereo pair gives two views).
# Color photographs first, then grayscale ones.
SOURCES: dict[str, Callable[[], list[np.ndarray]]] = {
    "astronaut": _skimage("astronaut"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "retina": _skimage("retina"),
    "motorcycle": _motorcycle,
    "camera": _skimage("camera"),
    "moon": _skimage("moon"),
    "coins": _skimage("coins"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
    "brick": _skimage("brick"),
}


@dataclass(frozen=True)
class Crop:
    """One file written: its path in the folder, its class, which view of the class's
    photographs it was cut from, and the box (left, top, right, bottom) in that view."""

    path: str
    source: str
    view: int
    box: tuple[int, int, int, int]


def photographs(names: list[str] | None = None) -> dict[str, list[np.ndarray]]:
    """The named photographs (all by default) as uint8 arrays, (H, W, 3) or (H, W)."""
    names = list(SOURCES) if names is None else list(names)
    unknown = [name for name in names if name not in SOURCES]
    if unknown:
        raise ValueError(f"unknown photographs {unknown}; choose from {', '.join(SOURCES)}")
    return {name: SOURCES[name]() for name in names}


def _box(
    rng: np.random.Generator,
    width: int,
    height: int,
    min_fraction: float,
    max_fraction: float,
    min_side: int,
) -> tuple[int, int, int, int]:
    short = min(width, height)
    side = rng.uniform(min_fraction, max_fraction) * short
    aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
    crop_w = int(np.clip(round(side * math.sqrt(aspect)), min(min_side, width), width))
    crop_h = int(np.clip(round(side / math.sqrt(aspect)), min(min_side, height), height))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    return left, top, left + crop_w, top + crop_h


def build_photo_folder(
    out_dir: str | os.PathLike,
    count: int,
    seed: int = 0,
    *,
    sources: list[str] | None = None,
    min_side: int = 32,
    min_fraction: float = 0.4,
    max_fraction: float = 1.0,
    png_fraction: float = 0.2,
    quality: int = 95,
) -> list[Crop]:
    """Write ``count`` crops into ``out_dir/<photograph>/<number>.jpg|png`` and return
    what was written. ``out_dir`` must not exist or be empty; the folder is built beside
    it and renamed into place, so an interrupted build leaves nothing under its name."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    if not 0 < min_fraction <= max_fraction <= 1:
        raise ValueError("need 0 < min_fraction <= max_fraction <= 1")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and is not an empty folder; choose a new path")
    photos = photographs(sources)
    names = list(photos)
    rng = np.random.default_rng(seed)
    digits = max(4, len(str(count)))
    partial = out_dir.with_name(out_dir.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    crops = []
    try:
        for index in range(count):
            name = names[index % len(names)]
            views = photos[name]
            view = int(rng.integers(len(views))) if len(views) > 1 else 0
            photo = views[view]
            height, width = photo.shape[:2]
            box = _box(rng, width, height, min_fraction, max_fraction, min_side)
            as_png = bool(rng.random() < png_fraction)
            image = Image.fromarray(photo).crop(box)
            path = f"{name}/{index // len(names):0{digits}d}.{'png' if as_png else 'jpg'}"
            (partial / name).mkdir(parents=True, exist_ok=True)
            if as_png:
                image.save(partial / path, format="PNG")
            else:
                image.save(partial / path, format="JPEG", quality=quality)
            crops.append(Crop(path, name, view, box))
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(partial, out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return crops


DESCRIPTION = (
    "Build an example image folder (one subfolder per class) from random crops of the real "
    "photographs shipped with scikit-image."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``imgbench photos`` (and of ``python -m imgbench.data.photos``)."""
    parser.add_argument("out_dir", type=Path, help="a new (or empty) folder to write")
    parser.add_argument("--count", type=int, default=2000, help="images to write (2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the crops (0)")
    parser.add_argument(
        "--png-fraction", type=float, default=0.2, help="share saved as PNG, not JPEG (0.2)"
    )
    parser.add_argument(
        "--sources",
        help=f"comma-separated photographs (classes) to use; default all: {','.join(SOURCES)}",
    )


def run(args: argparse.Namespace) -> int:
    """Build the folder ``add_arguments`` describes; the exit status."""
    sources = args.sources.split(",") if args.sources else None
    try:
        crops = build_photo_folder(
            args.out_dir, args.count, args.seed, sources=sources, png_fraction=args.png_fraction
        )
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    total = sum(f.stat().st_size for f in args.out_dir.rglob("*") if f.is_file())
    classes = len({crop.source for crop in crops})
    print(f"wrote {len(crops)} photographs in {classes} class folders to {args.out_dir} ", end="")
    print(f"({total / 1e6:.1f} MB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m imgbench.data.photos``: the same as ``imgbench photos``."""
    parser = argparse.ArgumentParser(prog="python -m imgbench.data.photos", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
