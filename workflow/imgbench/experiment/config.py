"""Config validation: the JSON schema, then the checks a schema cannot express.

Every problem becomes one sentence naming the key and the fix.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from imgbench.experiment import rigor
from imgbench.methods import (
    OptionError,
    available_methods,
    contract_problems,
    encoding,
    get_method,
    resolve_options,
)
from imgbench.system import fsutil


class ConfigError(ValueError):
    """config.yaml has a bad value; the message names the key and the fix."""


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = subschema["default"]
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_name(path) -> str:
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "(top level)"


def _sentence(error: jsonschema.ValidationError) -> str:
    key = _key_name(error.absolute_path)
    if error.validator == "additionalProperties":
        return f"config key {key}: {error.message}; remove it or fix its spelling"
    if error.validator == "required":
        return f"config key {key}: {error.message}; add it to config.yaml"
    hint = error.schema.get("description") if isinstance(error.schema, dict) else None
    if not hint and error.parent is not None:
        hint = error.parent.schema.get("description")
    value = error.instance
    shown = repr(value) if not isinstance(value, (dict, list)) or len(str(value)) < 60 else "..."
    fix = f"; set it to {hint}" if hint else ""
    return f"config key {key} has the bad value {shown} ({error.message}){fix}"


def load_schema(schema_path: Path) -> dict:
    with open(schema_path) as handle:
        return yaml.safe_load(handle)


def _refuse_retired_keys(config: dict) -> None:
    """Keys of older configs whose meaning changed: one sentence naming the new keys."""
    if "psnr_floor_db" in config:
        raise ConfigError(
            "config key psnr_floor_db is retired (it held every image of a lossy store to "
            "one floor, which faithful JPEGs of tiny images fail); remove it and set "
            f"store_psnr_floor_db (the whole store's PSNR, default {encoding.STORE_PSNR_FLOOR_DB:g}"
            f" dB) and image_psnr_floor_db (each image's, default "
            f"{encoding.IMAGE_PSNR_FLOOR_DB:g} dB, catches wrong images) instead"
        )


def _normalise(config: dict) -> None:
    """Spellings YAML turns into booleans or numbers, and the older boolean fsync, as
    names."""
    for variants in config.get("variants", {}).values():
        for options in variants.values():
            if options and "subsampling" in options:
                options["subsampling"] = encoding.subsampling_from_yaml(options["subsampling"])
    if isinstance(config["fsync"], bool):
        config["fsync"] = "per_file" if config["fsync"] else "none"
    config["readahead"] = [
        {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
        for value in config["readahead"]
    ]
    if len(set(config["readahead"])) < len(config["readahead"]):
        raise ConfigError(
            f"config key readahead lists a value twice ({config['readahead']}); "
            "give on, off or both once"
        )


def _check_variants(variants: dict, known: list[str]) -> None:
    """Each variant's options against its method (``resolve_options``: names, values
    within ``CHOICES``, the method's ``check_options``), so a bad option stops the run
    before any job; a bad value is named by its key, ``variants.<method>.<variant>.<option>``."""
    for method, named in variants.items():
        if method not in known:
            raise ConfigError(
                f"config key variants.{method} names the unknown method {method!r}; "
                f"use one of {', '.join(known)}"
            )
        for variant, options in named.items():
            try:
                resolve_options(get_method(method), options)
            except OptionError as error:
                raise ConfigError(
                    f"config key variants.{method}.{variant}.{error.option} has the bad value "
                    f"{error.value!r}: it must be {error.rule}; {error.fix}"
                ) from None
            except ValueError as error:
                raise ConfigError(
                    f"config key variants.{method}.{variant} is invalid: {error}; "
                    "fix the option or remove it"
                ) from None


def validate_config(config: dict, schema_path: Path) -> dict:
    """Fill defaults, check ``config`` against the schema and across keys; return it.

    Raises ``ConfigError`` with one sentence for the first problem found.
    """
    dataset = config.get("dataset")
    md5 = dataset.get("md5") if isinstance(dataset, dict) else None
    if isinstance(md5, (int, float)) and not isinstance(md5, bool):
        raise ConfigError(
            f"config key dataset.md5 is the number {md5}: YAML reads an md5 of digits only "
            'as a number (leading zeros lost); put it in quotes, e.g. md5: "0123..."'
        )
    _refuse_retired_keys(config)
    schema = load_schema(schema_path)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(_sentence(error))

    _normalise(config)
    rigor.apply(config)
    n_images = config["n_images"]
    for index, cutoff in enumerate(config["cutoffs"]):
        if cutoff > n_images:
            raise ConfigError(
                f"config key cutoffs[{index}] is {cutoff}, more than n_images ({n_images}); "
                f"lower the cutoff or raise n_images to at least {cutoff}"
            )
    known = available_methods()
    for index, method in enumerate(config["methods"]):
        if method not in known:
            raise ConfigError(
                f"config key methods[{index}] names the unknown method {method!r}; "
                f"use one of {', '.join(known)} (or add workflow/imgbench/methods/{method}.py)"
            )
        problems = contract_problems(get_method(method))
        if problems:
            raise ConfigError(
                f"config key methods[{index}] names {method}, whose module "
                f"workflow/imgbench/methods/{method}.py lacks {'; '.join(problems)}; "
                "add them (the method contract is in workflow/imgbench/methods/__init__.py)"
            )
    _check_variants(config["variants"], known)
    if (
        config["cold"] == "drop_caches"
        and "cold" in config["read_cache"]
        and not fsutil.can_drop_caches()
    ):
        raise ConfigError(
            "config key cold is drop_caches, but this process may not write "
            "/proc/sys/vm/drop_caches (it needs root); run as root or set cold: fadvise"
        )
    archive = config["dataset"]["archive"]
    if archive is not None and not Path(archive).is_file():
        raise ConfigError(
            f"config key dataset.archive points to {archive}, which is not a file; give the path "
            "of a CIFAR-10 python archive on disk, or null to download it"
        )
    return config
