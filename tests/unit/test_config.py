"""Config validation: schema defaults and every check, each error naming its key."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from imgbench.experiment import config as config_module
from imgbench.experiment import rigor
from imgbench.experiment.config import ConfigError, load_schema, validate_config
from imgbench.system import fsutil

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
BASE = yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.fixture
def config():
    return copy.deepcopy(BASE)


def schema_defaults(schema: dict) -> dict:
    return {name: sub["default"] for name, sub in schema["properties"].items() if "default" in sub}


# --- valid configurations ------------------------------------------------------------------


def test_repo_config_validates_unchanged(config):
    result = validate_config(config, SCHEMA)
    assert result is config  # the Snakefile relies on validation in place
    # Only the repeat keys it leaves null are filled, from its rigor's preset.
    assert {key: BASE[key] for key in rigor.REPEAT_KEYS} == dict.fromkeys(rigor.REPEAT_KEYS)
    assert config == {**BASE, **rigor.PRESETS[BASE["rigor"]]}


@pytest.mark.parametrize("name", ["fast", "default", "rigorous"])
def test_rigor_presets_fill_the_repeat_keys(config, name):
    config["rigor"] = name
    validate_config(config, SCHEMA)
    assert {key: config[key] for key in rigor.REPEAT_KEYS} == rigor.PRESETS[name]


def test_rigor_presets_claim_what_their_stores_allow():
    fast, default, rigorous = (rigor.PRESETS[name] for name in ("fast", "default", "rigorous"))
    assert fast["repeats"] == 1 and default["repeats"] == 3 and rigorous["repeats"] >= 6
    assert rigor.interval_claim(1) == "no interval, no verdict"
    assert rigor.interval_claim(3) == "75 % intervals (min–max)"
    assert rigor.interval_claim(6) == "95 % intervals"
    # min–max of n stores covers the median with 1 - 2 * 0.5**n: 96.9 % for 6
    assert 1 - 2 * 0.5 ** rigorous["repeats"] >= 0.95


def test_a_repeat_key_set_by_the_user_wins_over_the_preset(config):
    config.update(rigor="rigorous", inner_repeats=2)
    validate_config(config, SCHEMA)
    assert config["repeats"] == rigor.PRESETS["rigorous"]["repeats"]
    assert config["inner_repeats"] == 2
    assert rigor.describe(config) == (
        "rigor rigorous (6 stores per point: 95 % intervals); set apart from the preset: "
        "inner_repeats 2"
    )
    config.update(rigor="fast", repeats=3, inner_repeats=None, inner_budget_seconds=None)
    validate_config(config, SCHEMA)
    assert rigor.describe(config).startswith(
        "rigor fast (3 stores per point: 75 % intervals (min–max)); set apart from the "
        "preset: repeats 3"
    )


def test_an_unknown_rigor_is_one_sentence_naming_the_key(config):
    config["rigor"] = "thorough"
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    message = str(caught.value)
    assert message.startswith("config key rigor has the bad value 'thorough'")
    assert "fast" in message and "rigorous" in message


@pytest.mark.parametrize(
    "overlay", sorted((REPO / "docs" / "configs").glob("*.yaml")), ids=lambda path: path.name
)
def test_documented_configs_validate_over_the_repo_config(config, overlay):
    """Each config the docs tell users to pass with --configfile, on top of config.yaml
    (as Snakemake merges them: top-level keys replaced)."""
    changes = yaml.safe_load(overlay.read_text())
    config.update(changes)
    result = validate_config(config, SCHEMA)
    assert all(result[key] == value for key, value in changes.items())


def test_repo_config_states_the_schema_defaults():
    """config.yaml documents the defaults: each top-level value equals the schema's."""
    defaults = schema_defaults(load_schema(SCHEMA))
    for name, value in defaults.items():
        if name in ("dataset", "plot", "busy"):
            continue
        assert BASE[name] == value, name
    for section in ("dataset", "plot", "busy"):
        nested = schema_defaults(load_schema(SCHEMA)["properties"][section])
        assert BASE[section] == nested, section


def test_missing_optional_keys_get_their_defaults_in_place(config):
    for name in (
        "repeats",
        "read_cache",
        "variants",
        "readers",
        "read_patterns",
        "plot",
        "seed",
        "inner_repeats",
        "inner_budget_seconds",
        "fsync",
        "cold",
        "interval_threshold",
        "busy",
        "readahead",
        "shuffle_buffer",
    ):
        del config[name]
    config["dataset"] = {"archive": None}
    validate_config(config, SCHEMA)
    assert config["repeats"] == 3
    assert config["read_cache"] == ["cold", "warm"]
    assert config["variants"] == {}
    assert config["readers"] == [1]
    assert config["read_patterns"] == ["whole", "random_single"]
    assert config["seed"] == 0
    assert config["plot"] == {"formats": ["png", "svg"], "dpi": 150, "spread": "ci"}
    assert config["dataset"]["url"].startswith("https://")
    assert config["dataset"]["md5"] == "c58f30108f718f92721af3b95e74349a"
    assert (config["inner_repeats"], config["inner_budget_seconds"]) == (5, 3)
    assert config["fsync"] == "syncfs" and config["cold"] == "fadvise"
    assert config["interval_threshold"] == 0.1
    assert config["busy"] == {
        "foreign_cpu_cores": 0.25,
        "load_per_core": 1.0,
        "cpu_pressure_pct": 10.0,
    }
    assert config["readahead"] == ["on", "off"]
    assert config["shuffle_buffer"] == 1000


def test_nested_defaults_fill_around_given_values(config):
    config["plot"] = {"dpi": 300}
    config["busy"] = {"load_per_core": 2.0}
    validate_config(config, SCHEMA)
    assert config["plot"] == {"formats": ["png", "svg"], "dpi": 300, "spread": "ci"}
    assert config["busy"] == {
        "foreign_cpu_cores": 0.25,
        "load_per_core": 2.0,
        "cpu_pressure_pct": 10.0,
    }


def test_minimal_config_gets_every_default():
    minimal = {"dataset": {}, "n_images": 10, "cutoffs": [1, 10], "methods": ["npy"]}
    minimal["store_dir"] = "stores"
    validate_config(minimal, SCHEMA)
    defaults = schema_defaults(load_schema(SCHEMA))
    assert set(minimal) == set(defaults)
    assert minimal["n_images"] == 10 and minimal["cutoffs"] == [1, 10]
    assert minimal["image_sizes"] == [32] and minimal["pool_bytes"] == 1_000_000_000
    assert minimal["chunk_bytes"] == 64 << 20 and minimal["max_array_bytes"] == 4_000_000_000


def test_defaults_do_not_leak_between_calls():
    first = {"dataset": {}, "n_images": 10, "cutoffs": [1], "methods": ["npy"], "store_dir": "a"}
    second = copy.deepcopy(first)
    validate_config(first, SCHEMA)
    first["plot"]["formats"].append("pdf")
    first["dataset"]["md5"] = None
    validate_config(second, SCHEMA)
    assert second["plot"]["formats"] == ["png", "svg"]
    assert second["dataset"]["md5"] == "c58f30108f718f92721af3b95e74349a"


@pytest.mark.parametrize(
    "change",
    [
        {"dataset": {"md5": None}},
        {"dataset": {"md5": "C58F30108F718F92721AF3B95E74349A"}},
        {"dataset": {"url": "file:///data/cifar-10-python.tar.gz"}},
        {"variants": {"png": {"default": {}, "level1": {"compress_level": 1}}}},
        {"variants": {"png": {"default": None}}},
        {
            "variants": {
                "lmdb": {"article": {"value_format": "pickle"}, "wm": {"writemap": True}},
                "hdf5": {
                    "gzip": {"chunks": "image", "compression": "gzip", "compression_opts": 4},
                    "lzf": {"compression": "lzf"},
                },
            }
        },
        {"read_patterns": ["sequential", "shuffled", "random_single"], "readers": [1, 2, 4]},
        {"read_patterns": ["buffered_shuffle"], "shuffle_buffer": 1},
        {"image_sizes": [32, 256, 512]},
        {"n_images": 1000, "cutoffs": [1000]},
        {"read_cache": ["warm"]},
        {"fsync": "per_file", "cold": "fadvise", "inner_repeats": 1, "inner_budget_seconds": 0},
        {"read_patterns": ["whole"], "readahead": ["off"], "plot": {"spread": "iqr"}},
    ],
    ids=[
        "md5-null",
        "md5-upper",
        "file-url",
        "png-variants",
        "null-options",
        "lmdb-hdf5-variants",
        "patterns-readers",
        "buffered-shuffle-buffer-of-one",
        "sizes",
        "cutoff-equals-n",
        "warm-only",
        "per-file-one-repeat",
        "whole-readahead-off-iqr",
    ],
)
def test_valid_changes_pass(config, change):
    for key, value in change.items():
        if key == "dataset":
            config["dataset"].update(value)
        else:
            config[key] = value
    assert validate_config(config, SCHEMA) is config


def test_existing_archive_passes(config, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"x")
    config["dataset"]["archive"] = str(archive)
    validate_config(config, SCHEMA)


def test_image_size_keeps_cutoffs_that_fit(config):
    """4096x4096 within 4 GB: a few images per job; cutoff 1 fits, so the size is valid."""
    config["image_sizes"] = [32, 4096]
    validate_config(config, SCHEMA)


# --- one error per bad value, naming the key -----------------------------------------------


def set_key(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    target = config
    for part in parents:
        target = target[part]
    target[last] = value


BAD_VALUES = [
    # (key to set, value, pattern the message must match)
    ("n_images", 0, r"config key n_images has the bad value 0"),
    ("n_images", "100", r"config key n_images has the bad value '100'.*not of type 'integer'"),
    ("cutoffs", [], r"config key cutoffs has the bad value \[\]"),
    ("cutoffs", [1, 1], r"config key cutoffs has the bad value \[1, 1\].*non-unique"),
    ("cutoffs", [1, 0], r"config key cutoffs\[1\] has the bad value 0"),
    ("methods", ["PNG"], r"config key methods\[0\] has the bad value 'PNG'"),
    ("methods", [], r"config key methods has the bad value \[\]"),
    ("store_dir", "", r"config key store_dir has the bad value ''"),
    ("keep_stores", "no", r"config key keep_stores has the bad value 'no'"),
    ("repeats", 0, r"config key repeats has the bad value 0 .*from 1 to 100"),
    ("repeats", 101, r"config key repeats has the bad value 101"),
    ("fsync", "yes", r"config key fsync has the bad value 'yes'"),
    ("read_cache", ["hot"], r"config key read_cache\[0\] has the bad value 'hot'.*cold or warm"),
    ("read_cache", ["cold", "cold"], r"config key read_cache has the bad value"),
    ("read_cache", [], r"config key read_cache has the bad value \[\]"),
    ("cv_threshold", 0.1, r"'cv_threshold' was unexpected.*remove it or fix its spelling"),
    ("fsync", "fsync", r"config key fsync has the bad value 'fsync'.*per_file.*syncfs"),
    ("fsync", 1, r"config key fsync has the bad value 1"),
    ("cold", "evict", r"config key cold has the bad value 'evict'.*fadvise.*drop_caches"),
    ("inner_repeats", 0, r"config key inner_repeats has the bad value 0 .*from 1 to 100"),
    ("inner_repeats", 101, r"config key inner_repeats has the bad value 101"),
    ("inner_budget_seconds", -1, r"config key inner_budget_seconds has the bad value -1"),
    ("interval_threshold", 0, r"config key interval_threshold has the bad value 0"),
    ("busy.foreign_cpu_cores", 0, r"config key busy\.foreign_cpu_cores has the bad value 0"),
    ("busy.load_per_core", 0, r"config key busy\.load_per_core has the bad value 0"),
    ("busy.cpu_pressure_pct", 101, r"config key busy\.cpu_pressure_pct has the bad value 101"),
    ("busy", {"load": 1}, r"config key busy: .*'load' was unexpected"),
    ("readahead", ["maybe"], r"config key readahead\[0\] has the bad value 'maybe'"),
    ("readahead", [], r"config key readahead has the bad value \[\]"),
    ("read_patterns", ["whole", "whole"], r"config key read_patterns has the bad value"),
    ("image_sizes", [0], r"config key image_sizes\[0\] has the bad value 0 .*between 8 and 4096"),
    ("image_sizes", [32, 8192], r"config key image_sizes\[1\] has the bad value 8192"),
    ("image_sizes", [32, 32], r"config key image_sizes has the bad value \[32, 32\]"),
    ("pool_bytes", 1000, r"config key pool_bytes has the bad value 1000"),
    ("chunk_bytes", 0, r"config key chunk_bytes has the bad value 0"),
    ("resize_chunk_bytes", 0, r"config key resize_chunk_bytes has the bad value 0"),
    (
        "read_patterns",
        ["strided"],
        r"config key read_patterns\[0\] has the bad value 'strided'.*sequential, shuffled, "
        r"buffered_shuffle or random_single",
    ),
    ("read_patterns", [], r"config key read_patterns has the bad value \[\]"),
    ("readers", [0], r"config key readers\[0\] has the bad value 0 .*between 1 and 256"),
    ("readers", [1, 257], r"config key readers\[1\] has the bad value 257"),
    ("readers", [], r"config key readers has the bad value \[\]"),
    ("batch_size", 0, r"config key batch_size has the bad value 0"),
    ("random_reads", 0, r"config key random_reads has the bad value 0"),
    (
        "shuffle_buffer",
        0,
        r"config key shuffle_buffer has the bad value 0 .*; set it to how many images "
        r"buffered_shuffle's shuffle buffer holds before it draws \(at least 1\)$",
    ),
    ("shuffle_buffer", "x", r"config key shuffle_buffer has the bad value 'x' .*at least 1\)$"),
    ("shuffle_buffer", 2.5, r"config key shuffle_buffer has the bad value 2\.5"),
    ("seed", -1, r"config key seed has the bad value -1"),
    (
        "store_psnr_floor_db",
        -1,
        r"config key store_psnr_floor_db has the bad value -1 .*whole lossy store",
    ),
    ("image_psnr_floor_db", "x", r"config key image_psnr_floor_db has the bad value 'x'"),
    ("variants", {"png": {}}, r"config key variants\.png has the bad value \{\}"),
    (
        "variants",
        {"png": {"fast one": {}}},
        r"config key variants\.png has the bad value 'fast one'",
    ),
    ("variants", {"png": {"fast": 3}}, r"config key variants\.png\.fast has the bad value 3"),
    ("variants", [], r"config key variants has the bad value \[\]"),
    ("dataset.md5", "xyz", r"config key dataset\.md5 has the bad value 'xyz'.*32 hex digits"),
    ("dataset.md5", "g" * 32, r"config key dataset\.md5 has the bad value 'g+'"),
    ("dataset.url", "cifar.tar.gz", r"config key dataset\.url has the bad value 'cifar\.tar\.gz'"),
    ("dataset.archive", "", r"config key dataset\.archive has the bad value ''"),
    ("plot.formats", ["jpg"], r"config key plot\.formats\[0\] has the bad value 'jpg'"),
    ("plot.dpi", 10, r"config key plot\.dpi has the bad value 10"),
    ("plot.spread", "sd", r"config key plot\.spread has the bad value 'sd'"),
]


@pytest.mark.parametrize(
    ("key", "value", "message"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES]
)
def test_schema_rejects_bad_value(config, key, value, message):
    set_key(config, key, value)
    with pytest.raises(ConfigError, match=message):
        validate_config(config, SCHEMA)


def test_unknown_top_level_key_is_named(config):
    config["cutof"] = [1]
    with pytest.raises(ConfigError, match=r"'cutof' was unexpected.*remove it or fix its spelling"):
        validate_config(config, SCHEMA)


def test_unknown_dataset_key_is_named(config):
    config["dataset"]["sha256"] = "x"
    with pytest.raises(ConfigError, match=r"config key dataset: .*'sha256' was unexpected"):
        validate_config(config, SCHEMA)


def test_cutoff_above_n_images(config):
    config["n_images"] = 500
    with pytest.raises(
        ConfigError, match=r"config key cutoffs\[3\] is 1000, more than n_images \(500\)"
    ):
        validate_config(config, SCHEMA)


def test_unknown_method(config):
    config["methods"] = ["png", "tiff"]
    with pytest.raises(
        ConfigError, match=r"config key methods\[1\] names the unknown method 'tiff'"
    ):
        validate_config(config, SCHEMA)


def test_variants_for_an_unknown_method(config):
    config["variants"] = {"tiff": {"fast": {}}}
    with pytest.raises(
        ConfigError, match=r"config key variants\.tiff names the unknown method 'tiff'"
    ):
        validate_config(config, SCHEMA)


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        (
            "png",
            {"compress": 1},
            r"variants\.png\.fast is invalid: method png has no option compress",
        ),
        ("lmdb", {"map_size": 1}, r"variants\.lmdb\.fast is invalid: .*no option map_size"),
        ("hdf5", {"chunk": "image"}, r"variants\.hdf5\.fast is invalid: .*no option chunk\b"),
        ("npy", {"mmap": True}, r"variants\.npy\.fast is invalid: .*no option mmap"),
    ],
)
def test_unknown_variant_option(config, method, options, message):
    config["variants"] = {method: {"default": {}, "fast": options}}
    with pytest.raises(ConfigError, match=message):
        validate_config(config, SCHEMA)


@pytest.mark.parametrize(
    ("method", "option", "value", "rule", "fix"),
    [
        ("lmdb", "value_format", "json", "one of raw, pickle", "choose one of those or remove it"),
        ("png", "compress_level", 11, "one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9", "choose one"),
        *[
            (
                "wds",
                "shard_bytes",
                value,
                "a whole number of bytes of at least 1048576 (1.0 MiB)",
                "set it to e.g. 268435456 (the default) or remove it",
            )
            for value in (0, -1, "big", 1000, 2.5, True)
        ],
        *[
            (
                "zarr",
                option,
                value,
                "a whole number of images of at least 1",
                f"set it to e.g. {default} (the default) or remove it",
            )
            for option, default in (("chunk_images", 1), ("shard_images", 128))
            for value in (0, -3, "64")
        ],
        *[
            (
                "parquet",
                "row_group_images",
                value,
                "a whole number of images of at least 1",
                "set it to e.g. 100 (the default) or remove it",
            )
            for value in (0, -5, 2.5, "64")
        ],
        (
            "zarr",
            "shard_images",
            100,
            "a multiple of chunk_images (8), as a shard holds whole chunks",
            "set shard_images to e.g. 96, or sharding: false",
        ),
    ],
    ids=str,
)
def test_a_bad_option_value_is_refused_before_any_job(config, method, option, value, rule, fix):
    """Option values are checked with the names, when the config is validated: one
    sentence naming the key (variants.<method>.<variant>.<option>), the rule and the fix."""
    options = {option: value, **({"chunk_images": 8} if value == 100 else {})}
    config["variants"] = {method: {"default": {}, "bad": options}}
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    message = str(caught.value)
    assert message.startswith(
        f"config key variants.{method}.bad.{option} has the bad value {value!r}: "
        f"it must be {rule}; {fix}"
    ), message
    assert message.count(";") == 1 and "\n" not in message  # one sentence


def test_the_retired_psnr_floor_names_the_two_floors_that_replace_it(config):
    config["psnr_floor_db"] = 30
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    message = str(caught.value)
    assert message.startswith("config key psnr_floor_db is retired")
    assert "set store_psnr_floor_db (the whole store's PSNR, default 28 dB)" in message
    assert "image_psnr_floor_db (each image's, default 18 dB" in message
    assert message.count(";") == 1 and "\n" not in message  # one sentence


@pytest.mark.parametrize(
    ("method", "options", "wrong"),
    [
        ("wds", {"encoding": "webp", "lossless": False, "subsampling": "4:2:0"}, "webp"),
        ("png", {"subsampling": "4:4:4"}, "png"),  # png files default to PNG
        ("lmdb", {"subsampling": "4:2:2"}, "raw"),  # LMDB values default to raw
    ],
)
def test_subsampling_is_refused_with_other_encodings_than_jpeg(config, method, options, wrong):
    config["variants"] = {method: {"lossy": options}}
    with pytest.raises(
        ConfigError,
        match=rf"config key variants\.{method}\.lossy is invalid: method {method} option "
        rf"subsampling applies only to encoding jpeg, not {wrong}; fix the option or remove it",
    ):
        validate_config(config, SCHEMA)


def test_subsampling_unquoted_in_yaml_is_read_as_its_name(config):
    """YAML 1.1 reads an unquoted 4:2:0 as the base-60 number 14520."""
    config["variants"] = yaml.safe_load(
        "wds: {a: {encoding: jpeg, subsampling: 4:2:0}, b: {encoding: jpeg, subsampling: 4:4:4}}"
    )
    assert config["variants"]["wds"]["a"]["subsampling"] == 14520
    validate_config(config, SCHEMA)
    assert config["variants"]["wds"]["a"]["subsampling"] == "4:2:0"
    assert config["variants"]["wds"]["b"]["subsampling"] == "4:4:4"
    config["variants"] = yaml.safe_load("wds: {a: {encoding: jpeg, subsampling: 4:1:1}}")
    with pytest.raises(
        ConfigError,
        match=r"variants\.wds\.a\.subsampling has the bad value '4:1:1': it must be one of "
        r"null, 4:4:4, 4:2:2, 4:2:0;",
    ):
        validate_config(config, SCHEMA)


def test_a_method_module_that_breaks_the_contract_is_named(config, monkeypatch):
    real = config_module.get_method
    half = types.ModuleType("imgbench.methods.npy")
    half.__dict__.update(
        {k: v for k, v in vars(real("npy")).items() if k not in ("PACKAGES", "read_batches")}
    )
    monkeypatch.setattr(
        config_module, "get_method", lambda name: half if name == "npy" else real(name)
    )
    config["methods"] = ["png", "npy"]
    with pytest.raises(
        ConfigError,
        match=r"config key methods\[1\] names npy, whose module workflow/imgbench/methods/"
        r"npy\.py lacks PACKAGES .*; read_batches\(\); add them",
    ):
        validate_config(config, SCHEMA)


# Options for a variant of each shipped method; any other method gets its defaults.
VARIANT_OPTIONS = {
    "png": {"compress_level": 1},
    "lmdb": {"value_format": "pickle", "writemap": True, "sync": True},
    "hdf5": {"chunks": "image", "compression": "gzip", "compression_opts": 4},
    "npy": {},
}

NO_FORMAT_LIBRARY = """
import json, sys
import yaml
from imgbench.experiment import config, plan
from imgbench.harness import measure, provenance, space
from imgbench.methods import available_methods, get_method

settings = yaml.safe_load(open(sys.argv[1]))
options = json.loads(sys.argv[2])
settings["methods"] = available_methods()
settings["variants"] = {
    name: {"default": {}, "custom": options.get(name, dict(get_method(name).OPTIONS))}
    for name in available_methods()
}
config.validate_config(settings, sys.argv[3])
for name in available_methods():
    module = get_method(name)
    module.DESCRIPTION, module.OPTIONS, module.PACKAGES
    space.store_bytes(name, 100, 3072, settings["variants"][name]["custom"])
plan.store_jobs(settings)
libraries = ("h5py", "lmdb", "PIL", "webdataset", "pyarrow", "zarr", "numcodecs")
print(json.dumps(sorted(m for m in libraries if m in sys.modules)))
"""


def test_validating_variants_of_every_method_loads_no_format_library(tmp_path):
    """The Snakemake process validates the config (variants of every method), checks the
    space every store needs and plans the jobs; none of that may import a format library
    (h5py, lmdb, Pillow, webdataset, pyarrow, zarr, numcodecs), which only the jobs of a
    method load (in a fresh interpreter: this test process has them loaded already)."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_FORMAT_LIBRARY,
            str(REPO / "config.yaml"),
            json.dumps(VARIANT_OPTIONS),
            str(SCHEMA),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "workflow")},
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_the_removed_max_job_bytes_is_refused(config):
    config["max_job_bytes"] = 10**9
    with pytest.raises(ConfigError, match=r"'max_job_bytes' was unexpected"):
        validate_config(config, SCHEMA)


def test_archive_that_is_missing(config, tmp_path):
    config["dataset"]["archive"] = str(tmp_path / "nope.tar.gz")
    with pytest.raises(ConfigError, match=r"config key dataset\.archive points to .*nope\.tar\.gz"):
        validate_config(config, SCHEMA)


def test_archive_that_is_a_directory(config, tmp_path):
    config["dataset"]["archive"] = str(tmp_path)
    with pytest.raises(ConfigError, match=r"config key dataset\.archive .*which is not a file"):
        validate_config(config, SCHEMA)


def test_config_error_is_one_sentence(config):
    config["repeats"] = 0
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


# --- normalised spellings and cross-key checks of the new harness --------------------------


@pytest.mark.parametrize(("given", "expected"), [(True, "per_file"), (False, "none")])
def test_boolean_fsync_becomes_a_strategy(config, given, expected):
    config["fsync"] = given
    validate_config(config, SCHEMA)
    assert config["fsync"] == expected


@pytest.mark.parametrize("strategy", ["per_file", "syncfs", "none"])
def test_fsync_strategies_stay(config, strategy):
    config["fsync"] = strategy
    validate_config(config, SCHEMA)
    assert config["fsync"] == strategy


def test_yaml_booleans_for_readahead_become_on_and_off():
    """A bare on/off in YAML is a boolean; the config holds the names."""
    text = (
        (REPO / "config.yaml")
        .read_text()
        .replace('readahead: ["on", "off"]', "readahead: [on, off]")
    )
    assert "readahead: [on, off]" in text
    config = yaml.safe_load(text)
    assert config["readahead"] == [True, False]
    validate_config(config, SCHEMA)
    assert config["readahead"] == ["on", "off"]


@pytest.mark.parametrize("readahead", [[True, "on"], ["off", False]])
def test_readahead_listed_twice_is_refused_in_one_sentence(config, readahead):
    config["readahead"] = readahead
    with pytest.raises(ConfigError, match=r"config key readahead lists a value twice") as caught:
        validate_config(config, SCHEMA)
    assert "\n" not in str(caught.value)


def test_drop_caches_refused_without_permission(config, monkeypatch):
    monkeypatch.setattr(fsutil, "can_drop_caches", lambda: False)
    config["cold"] = "drop_caches"
    with pytest.raises(
        ConfigError, match=r"config key cold is drop_caches.*cold: fadvise"
    ) as caught:
        validate_config(config, SCHEMA)
    assert "\n" not in str(caught.value)


def test_drop_caches_accepted_with_permission_or_without_cold_reads(config, monkeypatch):
    monkeypatch.setattr(fsutil, "can_drop_caches", lambda: True)
    config["cold"] = "drop_caches"
    validate_config(copy.deepcopy(config), SCHEMA)
    monkeypatch.setattr(fsutil, "can_drop_caches", lambda: False)
    config["read_cache"] = ["warm"]  # nothing is evicted, so no root is needed
    validate_config(config, SCHEMA)


def test_normalise_is_idempotent():
    config = {"fsync": True, "readahead": [False, True]}
    config_module._normalise(config)
    assert config == {"fsync": "per_file", "readahead": ["off", "on"]}
    config_module._normalise(config)
    assert config == {"fsync": "per_file", "readahead": ["off", "on"]}
