"""Image encodings (raw, PNG, JPEG, WebP) on real photographs: the codec module, the
encoded PNG-file and LMDB stores, JPEG's chroma subsampling, and the two fidelity floors
that check lossy stores (the whole store's PSNR, and each image's against garbage)."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from method_helpers import PHOTOGRAPHS, photo_crops

from imgbench import methods
from imgbench.data import pool
from imgbench.experiment import plan
from imgbench.harness import measure, provenance, verification
from imgbench.harness.point import Point, Settings
from imgbench.methods import encoding, get_method

REPO = Path(__file__).resolve().parents[2]
LOSSLESS = [
    {"encoding": "raw"},
    {"encoding": "png"},
    {"encoding": "png", "compress_level": 1},
    {"encoding": "webp", "lossless": True},
]
LOSSY = [{"encoding": "jpeg", "quality": 95}, {"encoding": "webp", "lossless": False}]


@pytest.fixture(scope="module")
def crops():
    """12 crops of 48 pixels (from generator 0), labelled by their photograph (0-2)."""
    images = photo_crops(12, 48, np.random.default_rng(0))
    return images, (np.arange(len(images)) % len(PHOTOGRAPHS)).astype(np.uint8)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return provenance.collect(tmp_path_factory.getbasetemp(), REPO)


def full(options: dict) -> dict:
    return {**encoding.options("png"), **options}


@pytest.mark.parametrize("options", LOSSLESS, ids=encoding.describe)
def test_lossless_encodings_round_trip_exactly(options, crops):
    images, _ = crops
    for image in images:
        data = encoding.encode(image, full(options))
        got = encoding.decode(data, options["encoding"], image.shape)
        assert np.array_equal(got, image)
    assert not encoding.is_lossy(full(options))


@pytest.mark.parametrize("options", LOSSY, ids=lambda o: encoding.describe(full(o)))
def test_lossy_encodings_keep_a_photo_above_the_floor_but_not_exact(options, crops):
    images, _ = crops
    got = np.stack(
        [
            encoding.decode(encoding.encode(image, full(options)), options["encoding"], image.shape)
            for image in images
        ]
    )
    assert encoding.is_lossy(full(options))
    assert not np.array_equal(got, images)
    psnr = encoding.psnr_per_image_db(images, got)
    assert psnr.min() >= encoding.STORE_PSNR_FLOOR_DB  # far above the image floor
    assert encoding.psnr_db(images, got) >= psnr.min()


def test_jpeg_quality_trades_bytes_for_fidelity(crops):
    images, _ = crops
    sizes, fidelity = [], []
    for quality in (50, 95):
        options = full({"encoding": "jpeg", "quality": quality})
        encoded = [encoding.encode(image, options) for image in images]
        decoded = np.stack([encoding.decode(d, "jpeg", images.shape[1:]) for d in encoded])
        sizes.append(sum(map(len, encoded)))
        fidelity.append(encoding.psnr_db(images, decoded))
    assert sizes[0] < sizes[1] and fidelity[0] < fidelity[1]


def test_psnr_of_an_unrelated_photo_or_noise_is_below_the_image_floor(crops):
    images, _ = crops
    assert encoding.psnr_db(images[0], images[0]) == math.inf
    assert encoding.psnr_db(images[0], images[1]) < encoding.IMAGE_PSNR_FLOOR_DB - 3
    noise = np.random.default_rng(5).integers(0, 256, images.shape, dtype=np.uint8)
    assert encoding.psnr_per_image_db(images, noise).max() < encoding.IMAGE_PSNR_FLOOR_DB - 5


def jpeg_round_trip(images: np.ndarray, options: dict) -> tuple[np.ndarray, int]:
    """The images through JPEG with ``options`` (over the defaults), and their bytes."""
    encoded = [encoding.encode(image, full({"encoding": "jpeg", **options})) for image in images]
    decoded = np.stack([encoding.decode(data, "jpeg", images.shape[1:]) for data in encoded])
    return decoded, sum(map(len, encoded))


def test_jpeg_subsampling_is_applied_and_full_chroma_is_the_default(crops):
    from PIL import Image, JpegImagePlugin

    images, _ = crops
    assert encoding.options("png")["subsampling"] is None  # JPEG's default, 4:4:4
    assert encoding.subsampling(full({"encoding": "jpeg"})) == "4:4:4"
    fidelity, sizes = {}, {}
    for subsampling, pillow in encoding.SUBSAMPLINGS.items():
        data = encoding.encode(images[0], full({"encoding": "jpeg", "subsampling": subsampling}))
        with Image.open(io.BytesIO(data)) as picture:
            assert JpegImagePlugin.get_sampling(picture) == pillow
        decoded, sizes[subsampling] = jpeg_round_trip(images, {"subsampling": subsampling})
        fidelity[subsampling] = encoding.psnr_db(images, decoded)
    assert fidelity["4:4:4"] > fidelity["4:2:2"] > fidelity["4:2:0"]
    assert sizes["4:4:4"] > sizes["4:2:2"] > sizes["4:2:0"]
    default, _ = jpeg_round_trip(images, {})
    full_chroma, _ = jpeg_round_trip(images, {"subsampling": "4:4:4"})
    assert np.array_equal(default, full_chroma)


def test_fidelity_gathers_store_worst_and_low_percentile_psnr(crops):
    images, _ = crops
    decoded, _ = jpeg_round_trip(images, {"quality": 40, "subsampling": "4:2:0"})
    fidelity = encoding.Fidelity()
    for start in range(0, len(images), 5):  # batch by batch, as a store is read
        fidelity.add(images[start : start + 5], decoded[start : start + 5])
    per_image = encoding.psnr_per_image_db(images, decoded)
    assert fidelity.images == len(images)
    assert fidelity.store_db == pytest.approx(encoding.psnr_db(images, decoded))
    assert fidelity.worst_db == per_image.min()
    assert fidelity.worst_image() == int(np.argmin(per_image))
    assert fidelity.low_percentile_db in per_image  # an image's own value
    assert per_image.min() <= fidelity.low_percentile_db <= np.median(per_image)
    exact = encoding.Fidelity()
    exact.add(images, images)
    assert exact.store_db == exact.worst_db == exact.low_percentile_db == math.inf


@pytest.mark.parametrize("options", LOSSLESS + LOSSY, ids=lambda o: encoding.describe(full(o)))
def test_max_encoded_bytes_bounds_photos_and_noise(options, crops):
    images, _ = crops
    noise = np.random.default_rng(3).integers(0, 256, images.shape, dtype=np.uint8)
    bound = encoding.max_encoded_bytes(images[0].nbytes, full(options))
    for image in (*images, *noise):
        assert len(encoding.encode(image, full(options))) <= bound


def test_decode_refuses_data_of_another_shape_or_encoding(crops):
    images, _ = crops
    png = encoding.encode(images[0], full({"encoding": "png"}))
    with pytest.raises(ValueError, match=r"decoded png image is \(48, 48, 3\), the store's are"):
        encoding.decode(png, "png", (32, 32, 3))
    with pytest.raises(ValueError, match=r"raw image of 6912 bytes is not of shape"):
        encoding.decode(images[0].tobytes(), "raw", (32, 32, 3))
    with pytest.raises(Exception, match=r"cannot identify image file"):
        encoding.decode(png, "jpeg", images.shape[1:])


def test_describe_names_the_encoding():
    assert encoding.describe({}) == "raw"
    assert encoding.describe(full({"encoding": "jpeg", "quality": 90})) == "jpeg q90 4:4:4"
    jpeg420 = full({"encoding": "jpeg", "subsampling": "4:2:0"})
    assert encoding.describe(jpeg420) == "jpeg q95 4:2:0"
    assert encoding.describe(full({"encoding": "webp"})) == "webp lossless"
    assert encoding.describe(full({"encoding": "webp", "lossless": False})) == "webp q95"


# --- stores that keep encoded images -------------------------------------------------------


@pytest.mark.parametrize("method", ["png", "lmdb"])
@pytest.mark.parametrize("options", LOSSLESS, ids=encoding.describe)
def test_encoded_stores_round_trip_exactly(method, options, crops, tmp_path):
    images, labels = crops
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    module = get_method(method)
    methods.store(module, store_dir, images, labels, options)
    got, got_labels = module.read(store_dir)
    assert np.array_equal(got, images) and np.array_equal(got_labels, labels)
    batches = list(module.read_batches(store_dir, 5))
    assert np.array_equal(np.concatenate([b[0] for b in batches]), images)
    order = np.random.default_rng(2).permutation(len(images))
    reader = module.open_reader(store_dir, readahead=False)
    try:
        shuffled, shuffled_labels = reader.get(order)
    finally:
        reader.close()
    assert np.array_equal(shuffled, images[order])
    assert np.array_equal(shuffled_labels, labels[order])


def test_png_method_names_files_by_encoding(crops, tmp_path):
    images, labels = crops
    for options, extension in (({"encoding": "jpeg"}, "jpg"), ({"encoding": "raw"}, "raw")):
        store_dir = tmp_path / extension
        store_dir.mkdir()
        methods.store("png", store_dir, images, labels, options)
        assert len(list(store_dir.glob(f"*.{extension}"))) == len(images)
        assert not list(store_dir.glob("*.png"))
    raw_file = tmp_path / "raw" / "3.raw"
    assert raw_file.read_bytes() == images[3].tobytes()


def test_encoded_lmdb_values_are_the_encoded_bytes(crops, tmp_path):
    import lmdb

    images, labels = crops
    methods.store("lmdb", tmp_path, images, labels, {"encoding": "webp"})
    with lmdb.open(str(tmp_path), readonly=True, lock=False) as env, env.begin() as txn:
        value = txn.get(b"00000002")
    assert value[:4] == b"RIFF" and value[8:12] == b"WEBP"
    assert np.array_equal(encoding.decode(value, "webp", images.shape[1:]), images[2])


def test_lmdb_pickle_values_refuse_an_encoding(crops, tmp_path):
    images, labels = crops
    with pytest.raises(ValueError, match=r"value_format pickle .* use encoding raw with it"):
        methods.store(
            "lmdb", tmp_path, images, labels, {"value_format": "pickle", "encoding": "png"}
        )


# --- the harness: a lossy store is checked by the fidelity floor ---------------------------


@pytest.mark.parametrize("method", ["png", "lmdb"])
def test_lossy_store_rows_carry_its_psnr_and_reads_check_the_floor(method, crops, env, tmp_path):
    images, labels = crops
    options = {"encoding": "jpeg", "quality": 95}
    store_dir = tmp_path / "store"
    point = Point(method, variant="jpeg95", options=options)
    rows = measure.run_store(point, (images, labels), store_dir, env=env)
    expected = np.stack(
        [encoding.decode(encoding.encode(i, full(options)), "jpeg", i.shape) for i in images]
    )
    per_image = encoding.psnr_per_image_db(images, expected)
    for row in rows:
        assert row["encoding"] == "jpeg q95 4:4:4" and row["lossy"] is True
        assert row["psnr_db"] == pytest.approx(encoding.psnr_db(images, expected), abs=1e-3)
        assert row["psnr_min_db"] == pytest.approx(per_image.min(), abs=1e-3)
        low = np.percentile(per_image, encoding.LOW_PERCENTILE, method="lower")
        assert row["psnr_p01_db"] == pytest.approx(low, abs=1e-3)
        assert row["psnr_db"] >= encoding.STORE_PSNR_FLOOR_DB
        assert row["psnr_min_db"] >= encoding.IMAGE_PSNR_FLOOR_DB
    for pattern, readers in (("whole", 1), ("shuffled", 2), ("random_single", 1)):
        point = Point(
            method,
            variant="jpeg95",
            options=options,
            cache="warm",
            pattern=pattern,
            readers=readers,
            batch_size=4,
            random_reads=6,
        )
        (read,) = measure.run_read(point, (images, labels), store_dir, env=env)
        assert read["lossy"] is True and read["images_read"] > 0


def test_lossless_store_rows_have_no_psnr(crops, env, tmp_path):
    images, labels = crops
    point = Point("png", options={"encoding": "webp"})
    (row, *_) = measure.run_store(point, (images, labels), tmp_path / "store", env=env)
    assert row["encoding"] == "webp lossless" and row["lossy"] is False
    assert math.isnan(row["psnr_db"]) and math.isnan(row["psnr_p01_db"])


def test_a_store_below_the_store_floor_stops_the_run_in_one_sentence(crops, env, tmp_path):
    images, labels = crops
    with pytest.raises(measure.VerificationError) as caught:
        measure.run_store(
            Point("png", options={"encoding": "jpeg", "quality": 30, "subsampling": "4:2:0"}),
            (images, labels),
            tmp_path / "store",
            env=env,
            settings=Settings(store_psnr_floor_db=45),
        )
    message = str(caught.value)
    assert re.fullmatch(
        r"the lossy png store is \d+\.\d dB PSNR from its source over all its pixels \(worst "
        r"image \d+\.\d dB\), below store_psnr_floor_db 45; raise the variant's quality \(for "
        r'JPEG, or use subsampling "4:4:4"\) or lower store_psnr_floor_db in the config',
        message,
    ), message


def test_a_store_with_one_wrong_image_fails_the_image_floor(crops, env, tmp_path):
    """One image of a lossy store replaced by another photograph's: the store's PSNR
    hardly moves, the store job and every read stop at that image."""
    images, labels = crops
    options = {"encoding": "jpeg", "quality": 95}
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    methods.store("png", store_dir, images, labels, options)
    (store_dir / "4.jpg").write_bytes(encoding.encode(images[5], full(options)))
    source = pool.tile(images, labels, len(images))
    module = get_method("png")
    with pytest.raises(
        measure.VerificationError,
        match=r"the lossy png store's image 4 is \d+\.\d dB PSNR from its source, below "
        r"image_psnr_floor_db 18, where only a wrong or corrupt image falls",
    ):
        measure.store_psnr(module, store_dir, source, 0.0, encoding.IMAGE_PSNR_FLOOR_DB)
    with pytest.raises(
        measure.VerificationError,
        match=r"image 4 is \d+\.\d dB PSNR from the source, below image_psnr_floor_db 18 "
        r"\(a wrong or corrupt image",
    ):
        point = Point("png", options=options, cache="warm")
        measure.run_read(point, (images, labels), store_dir, env=env)


def test_a_lossy_read_of_the_wrong_images_fails_the_image_floor(crops):
    images, labels = crops
    source = pool.tile(images, labels, len(images))
    wrong = (images[[1, 0]], labels[[0, 1]])
    floor = encoding.IMAGE_PSNR_FLOOR_DB
    with pytest.raises(measure.VerificationError, match=r"dB PSNR from the source, below"):
        verification.verify("png", wrong, source, indices=[0, 1], floor_db=floor)
    verification.verify(
        "png", (images[[1, 0]], labels[[1, 0]]), source, indices=[1, 0], floor_db=floor
    )


# --- the config: the floors reach only lossy jobs -------------------------------------------


@pytest.mark.parametrize("key", ["store_psnr_floor_db", "image_psnr_floor_db"])
def test_psnr_floors_reach_only_jobs_of_lossy_variants(key):
    config = {
        key: 33.0,
        "variants": {
            "png": {"jpeg95": {"encoding": "jpeg"}, "webp": {"encoding": "webp"}},
            "lmdb": {"lossy": {"encoding": "webp", "lossless": False}},
        },
    }
    floor = plan.PsnrFloor(config, key)

    def job(method, variant):
        return floor(SimpleNamespace(method=method, variant=variant))

    assert job("png", "jpeg95") == 33.0
    assert job("lmdb", "lossy") == 33.0
    assert job("png", "webp") is None
    assert job("png", "default") is None
    assert job("npy", "default") is None


def test_the_floors_pass_the_read_and_store_jobs_their_own_keys():
    rules = (REPO / "workflow" / "rules" / "benchmark.smk").read_text()
    store_rule, read_rule = rules.split("\nrule store:")[1], rules.split("\nrule read:")[1]
    for key in ("store_psnr_floor_db", "image_psnr_floor_db"):
        assert f'{key}=plan.PsnrFloor(config, "{key}")' in store_rule.split("\nrule ")[0]
    read_params = read_rule.split("\nrule ")[0]
    assert 'image_psnr_floor_db=plan.PsnrFloor(config, "image_psnr_floor_db")' in read_params
    assert "store_psnr_floor_db" not in read_params


@pytest.mark.parametrize(
    ("key", "default"),
    [
        ("store_psnr_floor_db", encoding.STORE_PSNR_FLOOR_DB),
        ("image_psnr_floor_db", encoding.IMAGE_PSNR_FLOOR_DB),
    ],
)
def test_schema_default_floors_are_the_harness_defaults(key, default):
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"][key]["default"] == default
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert config[key] == default
    assert "psnr_floor_db" not in config and "psnr_floor_db" not in schema["properties"]
