"""Your own images: the folder loader (layout, labels, the resize-and-crop policy, modes,
EXIF orientation, errors, fingerprint), the example folder of real photographs, the
pool script's no-resize path (the workflow end to end on a folder is in
tests/workflow/test_folder_e2e.py)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from imgbench.data import imagefolder, photos, resize
from imgbench.data.imagefolder import FolderError
from imgbench.experiment import plan

REPO = Path(__file__).resolve().parents[2]
# Given out of name order: labels follow the sorted class names, not this order.
SOURCES = ["coffee", "astronaut", "chelsea"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """12 real photographs (4 per class), half of them PNG."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    crops = photos.build_photo_folder(root, 12, seed=0, sources=SOURCES, png_fraction=0.5)
    return root, crops


@pytest.fixture
def folder_copy(photo_folder, tmp_path):
    root = tmp_path / "images"
    shutil.copytree(photo_folder[0], root)
    return root


def write_all(listing, size, tmp_path, count=None):
    paths = [tmp_path / name for name in ("images.npy", "labels.npy", "classes.json")]
    written = imagefolder.write_arrays(listing, size, *paths, count=count, chunk_bytes=5000)
    return written, np.load(paths[0]), np.load(paths[1]), json.loads(paths[2].read_text())


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, asymmetric colour image (so flips, crops and rotations all show)."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 20, size=(height, width))
    channels = [x * 200 // width + noise, y * 200 // height, (x + 2 * y) % 256]
    return np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8)


# --- layout, labels, order, output ---------------------------------------------------------


def test_labels_are_the_sorted_class_index_and_order_is_class_then_file(photo_folder, tmp_path):
    root, crops = photo_folder
    listing = imagefolder.scan(root)
    assert listing.classes == ("astronaut", "chelsea", "coffee")
    assert [entry.path for entry in listing.entries] == sorted(crop.path for crop in crops)
    count, images, labels, record = write_all(listing, 40, tmp_path)
    assert count == 12
    assert labels.dtype == np.uint8 and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert record["classes"] == {"astronaut": 0, "chelsea": 1, "coffee": 2}
    assert record["files"] == [entry.path for entry in listing.entries]
    for path, label in zip(record["files"], labels, strict=True):
        assert path.split("/")[0] == listing.classes[label]


def test_output_is_n_size_size_3_uint8_and_equals_decode(photo_folder, tmp_path):
    root, _ = photo_folder
    listing = imagefolder.scan(root)
    _, images, _, _ = write_all(listing, 40, tmp_path)
    assert images.shape == (12, 40, 40, 3) and images.dtype == np.uint8
    for image, path in zip(images, listing.paths(), strict=True):
        np.testing.assert_array_equal(image, imagefolder.decode(path, 40))
    assert len({image.tobytes() for image in images}) == 12  # distinct photographs
    assert not list(tmp_path.glob("*.part"))


def test_count_keeps_the_first_images_in_order(photo_folder, tmp_path):
    listing = imagefolder.scan(photo_folder[0])
    count, images, labels, record = write_all(listing, 24, tmp_path, count=5)
    assert count == 5 and images.shape == (5, 24, 24, 3)
    assert labels.tolist() == [0, 0, 0, 0, 1]
    assert record["files"] == [entry.path for entry in listing.entries[:5]]
    assert record["files_in_folder"] == 12


def test_hidden_and_os_files_are_ignored_and_classes_may_nest(folder_copy):
    before = imagefolder.scan(folder_copy)
    (folder_copy / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder_copy / "chelsea" / "._0000.jpg").write_bytes(b"AppleDouble")
    (folder_copy / "coffee" / "Thumbs.db").write_bytes(b"thumbs")
    (folder_copy / ".git").mkdir()
    after = imagefolder.scan(folder_copy)
    assert after == before and after.fingerprint == before.fingerprint
    nested = folder_copy / "coffee" / "2024" / "extra.png"
    save(Image.fromarray(pattern(30, 20)), nested)
    assert "coffee/2024/extra.png" in [
        entry.path for entry in imagefolder.scan(folder_copy).entries
    ]


# --- the documented policy -------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(451, 300), (300, 451), (97, 64), (20, 33)])
def test_short_side_resized_then_centre_crop_as_pillow_computes_it(tmp_path, width, height):
    """Computed here independently: scale so the short side is 48 (bicubic), then the
    centre 48x48; not a squash of the whole image to 48x48."""
    if (width, height) in ((451, 300), (300, 451)):
        import skimage.data

        source = skimage.data.chelsea()  # 451 x 300, a real photograph
        if height > width:
            source = np.ascontiguousarray(source.transpose(1, 0, 2))
    else:
        source = pattern(width, height)
    path = save(Image.fromarray(source), tmp_path / "a" / "image.png")
    got = imagefolder.decode(path, 48)

    original = Image.fromarray(source)
    short = min(width, height)
    new_w, new_h = round(width * 48 / short), round(height * 48 / short)
    resized = original.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - 48) // 2, (new_h - 48) // 2
    expected = np.asarray(resized)[top : top + 48, left : left + 48]
    np.testing.assert_array_equal(got, expected)
    squashed = np.asarray(original.resize((48, 48), Image.Resampling.BICUBIC))
    assert not np.array_equal(got, squashed)
    assert imagefolder.FILTER == resize.FILTER == Image.Resampling.BICUBIC


def test_an_image_of_the_target_size_is_kept_exactly(tmp_path):
    source = pattern(32, 32)
    path = save(Image.fromarray(source), tmp_path / "a" / "image.png")
    np.testing.assert_array_equal(imagefolder.decode(path, 32), source)


def test_grayscale_palette_rgba_cmyk_and_16_bit_become_rgb(tmp_path):
    rgb = pattern(40, 30)
    gray = rgb[..., 0]
    cases = {
        "gray.jpg": (Image.fromarray(gray), {"quality": 95}),
        "gray.png": (Image.fromarray(gray), {}),
        "palette.png": (Image.fromarray(rgb).quantize(64), {}),
        "rgba.png": (Image.fromarray(np.dstack([rgb, np.full(gray.shape, 7, np.uint8)])), {}),
        "cmyk.jpg": (Image.fromarray(rgb).convert("CMYK"), {"quality": 95}),
    }
    for name, (image, options) in cases.items():
        got = imagefolder.decode(save(image, tmp_path / "a" / name, **options), 30)
        assert got.shape == (30, 30, 3) and got.dtype == np.uint8, name
    # Grayscale: the same value on the three channels.
    got = imagefolder.decode(tmp_path / "a" / "gray.png", 30)
    assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 1], got[..., 2])
    # RGBA: the alpha channel dropped, the stored colours kept (not composited on black,
    # which alpha 7 of 255 would nearly blacken).
    rgb_path = save(Image.fromarray(rgb), tmp_path / "a" / "rgb.png")
    np.testing.assert_array_equal(
        imagefolder.decode(tmp_path / "a" / "rgba.png", 30), imagefolder.decode(rgb_path, 30)
    )
    # 16-bit grayscale: scaled to 8 bits (Pillow's own conversion would clip at 255).
    wide = (np.arange(30 * 30, dtype=np.uint32).reshape(30, 30) * 72).astype(np.uint16)
    path = save(Image.fromarray(wide), tmp_path / "a" / "wide.png")
    with Image.open(path) as image:
        assert image.mode.startswith("I")
    got = imagefolder.decode(path, 30)[..., 0].astype(int)
    np.testing.assert_allclose(got, wide / 257, atol=0.51)
    assert (got < 255).mean() > 0.9


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    """Stored 60x30: the left half red, the right half blue. Orientation 6 (rotate 90°
    clockwise to display) shows it 30x60 with red on top; 8 shows blue on top; 3 turns
    it upside down (blue left)."""
    stored = np.zeros((30, 60, 3), np.uint8)
    stored[:, :30] = (220, 20, 20)
    stored[:, 30:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(Image.fromarray(stored), tmp_path / "a" / "photo.jpg", quality=95, exif=exif)
    got = imagefolder.decode(path, 30).astype(int)
    red = lambda pixel: pixel[0] > 150 and pixel[2] < 80  # noqa: E731
    blue = lambda pixel: pixel[2] > 150 and pixel[0] < 80  # noqa: E731
    top, bottom, left, right = got[2, 15], got[27, 15], got[15, 2], got[15, 27]
    expected = {
        1: red(left) and blue(right),
        3: blue(left) and red(right),
        6: red(top) and blue(bottom),
        8: blue(top) and red(bottom),
    }
    assert expected[orientation], got[::5, ::5, 0]


# --- errors --------------------------------------------------------------------------------


def assert_one_sentence(message: str, *parts: str) -> None:
    assert "\n" not in message
    assert "dataset.images_dir" in message
    for part in parts:
        assert part in message, message


def test_a_text_file_named_jpg_is_refused_naming_it_before_anything_is_written(
    folder_copy, tmp_path
):
    bad = folder_copy / "coffee" / "notes.jpg"
    bad.write_text("shopping list: coffee\n")
    listing = imagefolder.scan(folder_copy)  # names and stat only: not caught here
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FolderError) as caught:
        write_all(listing, 32, out)
    assert_one_sentence(
        str(caught.value), str(bad), "is not an image Pillow can read", "remove it from"
    )
    assert list(out.iterdir()) == []


def test_a_truncated_image_is_refused_naming_it_and_leaves_no_output(folder_copy, tmp_path):
    last = imagefolder.scan(folder_copy).entries[-1]
    path = folder_copy / last.path
    buffer = io.BytesIO()
    Image.fromarray(pattern(300, 200)).save(buffer, format="JPEG", quality=95)
    path.unlink()
    path = path.with_suffix(".jpg")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # header intact
    out = tmp_path / "out"
    out.mkdir()
    listing = imagefolder.scan(folder_copy)
    assert listing.entries[-1].path == path.relative_to(folder_copy).as_posix()
    imagefolder.identify(listing)  # the header reads fine
    with pytest.raises(FolderError) as caught:
        write_all(listing, 32, out)
    assert_one_sentence(str(caught.value), str(path), "is not an image Pillow can read")
    assert list(out.iterdir()) == []  # the partial array removed


def test_an_empty_class_folder_is_refused_naming_it(folder_copy):
    (folder_copy / "dog").mkdir()
    (folder_copy / "dog" / ".DS_Store").write_bytes(b"x")  # hidden files do not count
    with pytest.raises(FolderError) as caught:
        imagefolder.scan(folder_copy)
    assert_one_sentence(str(caught.value), str(folder_copy / "dog"), "holds no images")
    assert "remove the folder" in str(caught.value)


def test_images_without_class_folders_are_refused_with_the_layout(photo_folder, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in photo_folder[0].rglob("*.jpg"):
        shutil.copy(path, flat / f"{path.parent.name}_{path.name}")
    with pytest.raises(FolderError) as caught:
        imagefolder.scan(flat)
    assert_one_sentence(str(caught.value), "no class subfolders", "images_dir/<class>/<image>")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FolderError) as caught:
        imagefolder.scan(empty)
    assert_one_sentence(str(caught.value), str(empty), "holds no class subfolders")


def test_a_file_beside_the_class_folders_is_refused(folder_copy):
    (folder_copy / "labels.csv").write_text("file,label\n")
    with pytest.raises(FolderError) as caught:
        imagefolder.scan(folder_copy)
    assert_one_sentence(str(caught.value), "labels.csv", "move it into one or remove it")


def test_a_missing_folder_or_a_file_is_refused(tmp_path):
    with pytest.raises(FolderError) as caught:
        imagefolder.scan(tmp_path / "nowhere")
    assert_one_sentence(str(caught.value), str(tmp_path / "nowhere"), "does not exist")
    file = tmp_path / "photo.jpg"
    file.write_bytes(b"")
    with pytest.raises(FolderError) as caught:
        imagefolder.scan(file)
    assert_one_sentence(str(caught.value), "is not a folder", "null for CIFAR-10")


# --- fingerprint and data file names --------------------------------------------------------


def test_fingerprint_changes_when_a_file_is_added_touched_or_renamed(folder_copy):
    first = imagefolder.scan(folder_copy).fingerprint
    assert imagefolder.scan(folder_copy).fingerprint == first  # stable
    path = folder_copy / imagefolder.scan(folder_copy).entries[0].path
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = imagefolder.scan(folder_copy).fingerprint
    assert touched != first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert imagefolder.scan(folder_copy).fingerprint == first  # back as it was
    extra = folder_copy / "chelsea" / "zz.jpg"
    shutil.copy(path, extra)
    os.utime(extra, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    added = imagefolder.scan(folder_copy).fingerprint
    assert added not in (first, touched)
    extra.rename(folder_copy / "coffee" / "zz.jpg")  # same file, another class
    assert imagefolder.scan(folder_copy).fingerprint not in (first, touched, added)


def test_tag_names_each_folder_apart_and_safely():
    tags = {imagefolder.tag(path) for path in ("photos", "a/photos", "/data/photos", "b/x y{z}")}
    assert len(tags) == 4
    assert imagefolder.tag("photos") == imagefolder.tag("./photos/")
    for tag in tags:
        assert all(c.isalnum() or c in "-_" for c in tag), tag


def test_a_folder_pool_is_bounded_by_pool_bytes_not_by_cifar():
    config = {"pool_bytes": 10**12, "dataset": {"images_dir": "photos", "archive": None}}
    assert plan.pool_bytes(config, 32) == 10**12
    config["dataset"]["images_dir"] = None
    assert plan.pool_bytes(config, 32) == plan.CIFAR_TRAINING_IMAGES * 32 * 32 * 3


# --- the example folder of real photographs --------------------------------------------------


def digest_tree(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_photo_folder_is_deterministic_per_seed(photo_folder, tmp_path):
    root, crops = photo_folder
    again = photos.build_photo_folder(
        tmp_path / "again", 12, seed=0, sources=SOURCES, png_fraction=0.5
    )
    assert again == crops
    assert digest_tree(tmp_path / "again") == digest_tree(root)
    other = photos.build_photo_folder(
        tmp_path / "other", 12, seed=1, sources=SOURCES, png_fraction=0.5
    )
    assert [crop.box for crop in other] != [crop.box for crop in crops]
    assert not list(tmp_path.glob("*.part"))


def test_photo_folder_holds_real_photo_crops_of_varied_sizes(photo_folder):
    root, crops = photo_folder
    sources = photos.photographs(SOURCES)
    assert Counter(crop.source for crop in crops) == dict.fromkeys(SOURCES, 4)
    suffixes = Counter(Path(crop.path).suffix for crop in crops)
    assert suffixes[".png"] >= 2 and suffixes[".jpg"] >= 2
    sizes = set()
    for crop in crops:
        photo = sources[crop.source][crop.view]
        left, top, right, bottom = crop.box
        region = photo[top:bottom, left:right]
        short = min(photo.shape[:2])
        # A side of 40 % or more of the short side, stretched to at most 4:3.
        assert min(region.shape[:2]) >= 0.4 * short * (3 / 4) ** 0.5 - 1, crop
        with Image.open(root / crop.path) as image:
            assert image.format == ("PNG" if crop.path.endswith(".png") else "JPEG")
            pixels = np.asarray(image.convert("RGB")).astype(int)
            sizes.add(image.size)
        if crop.path.endswith(".png"):
            np.testing.assert_array_equal(pixels, region)  # the photograph itself
        else:
            assert np.abs(pixels - region).mean() < 3  # JPEG quality 95
        # Photo content: PNG needs far more bytes than for a smooth gradient of that size.
        height, width = region.shape[:2]
        y, x = np.mgrid[0:height, 0:width]
        gradient = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], -1)
        assert png_bytes(region) > 5 * png_bytes(gradient.astype(np.uint8)), crop
        assert png_bytes(region) > 0.1 * region.size, crop
    assert len(sizes) >= 10  # sizes and shapes vary


def png_bytes(array: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return len(buffer.getvalue())


def test_grayscale_photographs_are_saved_as_grayscale_files(tmp_path):
    crops = photos.build_photo_folder(tmp_path / "gray", 4, sources=["camera", "moon"])
    for crop in crops:
        with Image.open(tmp_path / "gray" / crop.path) as image:
            assert image.mode == "L"
    images = imagefolder.scan(tmp_path / "gray")
    assert imagefolder.decode(next(images.paths()), 16).shape == (16, 16, 3)


def test_photo_builder_refuses_a_non_empty_folder_and_unknown_photographs(photo_folder, tmp_path):
    with pytest.raises(FileExistsError):
        photos.build_photo_folder(photo_folder[0], 3)
    with pytest.raises(ValueError, match="unknown photographs"):
        photos.build_photo_folder(tmp_path / "x", 3, sources=["kitten"])
    assert not (tmp_path / "x").exists()


def test_photo_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "imgbench.data.photos", str(tmp_path / "cli"), "--count", "5"]
        + ["--seed", "2", "--sources", "rocket,coins"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "workflow")},
        check=True,
    )
    assert "wrote 5 photographs in 2 class folders" in result.stdout
    assert len(imagefolder.scan(tmp_path / "cli")) == 5


# --- the pool script: a folder's images are not resized again --------------------------------


POOL_PROBE = """
import runpy, sys
from types import SimpleNamespace
images, labels, size, out = sys.argv[1:5]
smk = SimpleNamespace(
    input=SimpleNamespace(images=images, labels=labels),
    output=SimpleNamespace(images=out + "_images.npy", labels=out + "_labels.npy"),
    wildcards=SimpleNamespace(image_size=size),
    params=SimpleNamespace(max_images=5, chunk_bytes=1 << 20),
    log=[out + ".log"],
)
runpy.run_path(sys.argv[5], init_globals={"snakemake": smk})
"""


@pytest.mark.parametrize(("source_size", "size"), [(48, 48), (32, 32), (32, 48)])
def test_pool_copies_images_of_its_size_and_resizes_others(tmp_path, source_size, size):
    rng = np.random.default_rng(source_size)
    images = rng.integers(0, 256, size=(7, source_size, source_size, 3), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    args = [tmp_path / "images.npy", tmp_path / "labels.npy", size, tmp_path / "pool"]
    subprocess.run(
        [sys.executable, "-c", POOL_PROBE, *map(str, args), str(REPO / "workflow/scripts/pool.py")],
        env={**os.environ, "PYTHONPATH": str(REPO / "workflow")},
        check=True,
        capture_output=True,
    )
    pool = np.load(tmp_path / "pool_images.npy")
    expected = images[:5] if source_size == size else resize.resize_images(images[:5], size)
    np.testing.assert_array_equal(pool, expected)
    np.testing.assert_array_equal(np.load(tmp_path / "pool_labels.npy"), labels[:5])
    log = (tmp_path / "pool.log").read_text()
    assert ("resized from" in log) == (source_size != size), log


def test_readme_and_config_document_images_dir():
    readme = (REPO / "README.md").read_text()
    assert "## Your own images" in readme
    assert "python -m imgbench.data.photos" in (REPO / "docs" / "datasets.md").read_text()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert config["dataset"]["images_dir"] is None
