"""Codecs (option ``codec``): every codec round-trips every encoding it claims, on one
thread; a codec that lacks an encoding is refused in the config's words; the encoders
get the settings; stores record their codec and are read back with it; rows and the
provenance name it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from method_helpers import photo_set, store_fresh

from imgbench import methods
from imgbench.experiment.config import ConfigError, validate_config
from imgbench.harness import provenance
from imgbench.methods import OptionError, codecs, encoding, get_method, resolve_options

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
ENCODED_METHODS = ("png", "lmdb", "wds", "parquet", "arrow")


def pairs():
    """Every (codec, encoding, lossless) the codecs claim."""
    for codec, encodings in codecs.SUPPORTS.items():
        for name, modes in encodings.items():
            for mode in sorted(modes):
                yield codec, name, mode == codecs.LOSSLESS


def settings(codec, name, lossless, **extra):
    return {**encoding.options(name), "codec": codec, "lossless": lossless, **extra}


@pytest.fixture(scope="module")
def photos():
    """Six 48-pixel crops of real photographs (lossy codecs keep them near)."""
    images, _ = photo_set(6, 48, seed=3)
    return images


@pytest.mark.parametrize(("codec", "name", "lossless"), list(pairs()))
def test_every_codec_round_trips_every_encoding_it_claims(photos, codec, name, lossless):
    options = settings(codec, name, lossless)
    encode = encoding.encoder(options)
    data = [encode(image) for image in photos]
    assert all(isinstance(d, bytes) and len(d) > 0 for d in data)
    got = np.stack([encoding.decode(d, name, photos.shape[1:], codec) for d in data])
    assert got.dtype == np.uint8 and got.shape == photos.shape
    if lossless:
        assert np.array_equal(got, photos), f"{codec} {name} lossless is not exact"
    else:
        assert encoding.psnr_db(photos, got) >= encoding.STORE_PSNR_FLOOR_DB
        assert not np.array_equal(got, photos)  # lossy indeed: the floors apply
    assert encoding.is_lossy(resolve_options(get_method("lmdb"), options)) is not lossless


@pytest.mark.parametrize("name", ["png", "jpeg", "webp", "qoi"])
def test_codecs_decode_each_others_bytes(photos, name):
    """An encoding is a file format: what one codec wrote, every other that has it reads
    (so a codec's figure is its decoder's on the same kind of file)."""
    lossless = name != "jpeg"
    writers = codecs.codecs_for(name, lossless)
    for writer in writers:
        data = encoding.encode(photos[0], settings(writer, name, lossless))
        decoded = [encoding.decode(data, name, photos.shape[1:], c) for c in writers]
        for reader, pixels in zip(writers, decoded, strict=True):
            assert np.array_equal(pixels, decoded[0]), f"{reader} reads {writer}'s {name}"


@pytest.mark.parametrize("codec", codecs.codecs_for("jpeg", False))
def test_jpeg_settings_reach_every_encoder(photos, codec):
    """Quality and chroma subsampling change what each codec writes (alike for all)."""

    def size(**extra):
        return sum(len(encoding.encode(i, settings(codec, "jpeg", False, **extra))) for i in photos)

    assert size(quality=95, subsampling="4:2:0") < size(quality=95, subsampling="4:4:4")
    assert size(quality=50) < size(quality=95)
    pillow_bytes = sum(len(encoding.encode(i, settings("pillow", "jpeg", False))) for i in photos)
    assert abs(size() - pillow_bytes) <= 0.05 * pillow_bytes  # the same libjpeg settings


@pytest.mark.parametrize("codec", codecs.codecs_for("png", True))
def test_png_compress_level_reaches_every_encoder(photos, codec):
    def size(level):
        return sum(
            len(encoding.encode(i, settings(codec, "png", True, compress_level=level)))
            for i in photos
        )

    assert size(9) < size(0)


def test_jpegxl_effort_and_quality_reach_the_encoder(photos):
    def size(**extra):
        return sum(
            len(encoding.encode(i, settings(None, "jpegxl", False, **extra))) for i in photos
        )

    assert size(quality=60) < size(quality=95)
    assert size(quality=90, effort=1) != size(quality=90, effort=9)


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.parametrize(("codec", "name", "lossless"), list(pairs()))
def test_decoders_run_on_the_calling_thread_only(photos, codec, name, lossless):
    """A reader's decoder starts no threads of its own (readers are the parallelism)."""
    data = encoding.encode(photos[0], settings(codec, name, lossless))
    encoding.decode(data, name, photos.shape[1:], codec)  # the library loaded
    before = thread_count()
    for _ in range(3):
        encoding.decode(data, name, photos.shape[1:], codec)
    assert thread_count() == before
    if codec == "opencv":
        import cv2

        assert cv2.getNumThreads() == 1
    if codec == "pillow" and name == "avif":
        from PIL import AvifImagePlugin

        assert AvifImagePlugin.DEFAULT_MAX_THREADS == 1


def test_defaults_per_encoding():
    png = get_method("png")
    assert resolve_options(png, None)["codec"] == "pillow"
    assert resolve_options(png, {"encoding": "jpeg"})["codec"] == "pillow"
    assert resolve_options(png, {"encoding": "qoi"})["codec"] == "imagecodecs"
    assert resolve_options(png, {"encoding": "jpegxl"})["codec"] == "imagecodecs"
    assert resolve_options(png, {"encoding": "avif"})["codec"] == "imagecodecs"  # lossless
    lossy_avif = {"encoding": "avif", "lossless": False}
    assert resolve_options(png, lossy_avif)["codec"] == "pillow"
    assert resolve_options(png, {"encoding": "raw"})["codec"] == "none"
    assert resolve_options(get_method("hdf5"), None).get("codec") is None


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (
            {"encoding": "jpegxl", "codec": "pillow"},
            "option codec must be a codec that has jpegxl lossless: imagecodecs, not 'pillow'",
        ),
        (
            {"encoding": "png", "codec": "simplejpeg"},
            "must be a codec that has png: pillow, imagecodecs, opencv, spng, not 'simplejpeg'",
        ),
        (
            {"encoding": "avif", "codec": "pillow"},
            "or set lossless: false",
        ),
        ({"encoding": "raw", "codec": "opencv"}, "remove codec"),
        (
            {"encoding": "qoi", "codec": "opencv"},
            "set codec to pillow or imagecodecs or remove it (default imagecodecs)",
        ),
        ({"codec": "libpng"}, "option codec must be one of null, none, pillow, imagecodecs"),
        ({"encoding": "png", "effort": 3}, "option effort applies only to encoding jpegxl"),
    ],
)
def test_a_codec_without_the_encoding_is_refused_in_one_sentence(options, words):
    with pytest.raises(ValueError) as caught:
        resolve_options(get_method("png"), options)
    message = str(caught.value)
    assert words in message and "\n" not in message
    if "codec" in options and "effort" not in options and options["codec"] != "libpng":
        assert isinstance(caught.value, OptionError) and caught.value.option == "codec"


def test_the_config_refuses_a_codec_before_any_job():
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["variants"] = {"png": {"jxl": {"encoding": "jpegxl", "codec": "opencv"}}}
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    message = str(caught.value)
    assert "png" in message and "jxl" in message and "codec" in message
    assert "imagecodecs" in message and "\n" not in message


@pytest.mark.parametrize("method", ENCODED_METHODS)
def test_stores_record_their_codec_and_are_read_with_it(tmp_path, monkeypatch, method):
    images, labels = photo_set(5, 32, seed=1)
    options = {"encoding": "png", "codec": "spng"}
    store_dir = store_fresh(method, tmp_path / "store", images, labels, options)
    used = []
    real = encoding.decode

    def spy(data, name, shape, codec=None):
        used.append((name, codec))
        return real(data, name, shape, codec)

    monkeypatch.setattr(encoding, "decode", spy)
    module = get_method(method)
    got, _ = module.read(store_dir)
    assert np.array_equal(got, images)
    reader = module.open_reader(store_dir)
    try:
        got, _ = reader.get(np.array([4, 0]))
    finally:
        reader.close()
    assert np.array_equal(got, images[[4, 0]])
    assert used and set(used) == {("png", "spng")}
    assert "spng" in methods.read_path_of(module, resolve_options(module, options))


def test_a_store_written_before_codecs_reads_with_pillow(tmp_path, monkeypatch):
    images, labels = photo_set(3, 32, seed=2)
    store_dir = store_fresh("png", tmp_path / "store", images, labels)
    fields = json.loads((store_dir / "format.json").read_text())
    assert fields["codec"] == "pillow"
    del fields["codec"]
    (store_dir / "format.json").write_text(json.dumps(fields))
    used = []
    real = codecs.decoder

    def spy(name, codec):
        used.append(codec)
        return real(name, codec)

    monkeypatch.setattr(codecs, "decoder", spy)
    got, _ = get_method("png").read(store_dir)
    assert np.array_equal(got, images) and set(used) == {"pillow"}


def test_labels_name_the_new_encodings():
    assert encoding.describe({"encoding": "qoi"}) == "qoi"
    assert encoding.describe(settings(None, "jpegxl", True)) == "jpegxl lossless e7"
    assert encoding.describe(settings(None, "jpegxl", False, quality=90, effort=3)) == (
        "jpegxl q90 e3"
    )
    assert encoding.describe(settings(None, "avif", False, quality=80)) == "avif q80"
    assert encoding.describe(settings(None, "avif", True)) == "avif lossless"
    assert encoding.codec_of({"encoding": "jpeg", "codec": "opencv"}) == "opencv"
    assert encoding.codec_of({}) == "none"


def test_provenance_records_the_codec_and_its_libraries():
    opencv = provenance.method_versions("png", {"codec": "opencv"})
    assert opencv["codec"] == "opencv" and opencv["opencv-python-headless"]
    assert any(key.startswith("opencv.") for key in opencv)
    jxl = provenance.method_versions("lmdb", {"encoding": "jpegxl"})
    assert jxl["codec"] == "imagecodecs" and jxl["imagecodecs.libjxl"]
    assert provenance.method_versions("png", None)["pillow.zlib"]
    assert "codec" not in provenance.method_versions("lmdb", None)  # raw values
    assert "codec" not in provenance.method_versions("npy", None)
