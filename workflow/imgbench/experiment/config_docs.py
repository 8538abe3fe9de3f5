"""The table of configuration keys in ``docs/configuration.md``, generated from the config
schema (``workflow/schemas/config.schema.yaml``): one row per key (nested keys dotted,
``busy.foreign_cpu_cores``) with its default, the values the schema allows and its
``description``, the sentence the config validation also gives as the fix of a bad value.
So the documentation of a key is written once, in the schema, and the table cannot drift
from it: ``tests/unit/test_docs.py`` regenerates the table and compares.

    imgbench config-docs            rewrite the table in docs/configuration.md
    imgbench config-docs --check    exit status 1 if the committed table is not current

Only the part between the two marker lines is generated; the prose around it is written
by hand. The rendering is generic JSON schema (types, enums, bounds, lists, mappings,
``anyOf``/``oneOf``), so a key or a keyword added to the schema needs no change here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from imgbench.experiment.config import load_schema

REPO = Path(__file__).resolve().parents[3]
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
DOC_PATH = REPO / "docs" / "configuration.md"

BEGIN = (
    "<!-- config-table: generated from workflow/schemas/config.schema.yaml by "
    "`imgbench config-docs`; edit the schema's descriptions, not this table -->"
)
END = "<!-- config-table end -->"

DESCRIPTION = (
    "Regenerate the table of config keys in docs/configuration.md from the descriptions "
    "of workflow/schemas/config.schema.yaml; with --check, only say whether it is current."
)

HEADER = "| key | default | values | meaning |\n|---|---|---|---|"


class StaleTableError(Exception):
    """The document has no generated table to replace (its marker lines are missing)."""


def schema_keys(schema: dict, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """(dotted key, its schema) for every leaf key, in the schema's order; an object with
    ``properties`` is a group whose keys are listed instead of itself."""
    for name, subschema in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        if subschema.get("properties"):
            yield from schema_keys(subschema, f"{key}.")
        else:
            yield key, subschema


def yaml_value(value: object) -> str:
    """``value`` as it is written in config.yaml, on one line (flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value if _reads_back(value) else f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _reads_back(text: str) -> bool:
    """Whether YAML reads ``text`` unquoted as this string (``on`` it reads as true)."""
    try:
        return yaml.safe_load(f"key: {text}") == {"key": text}
    except yaml.YAMLError:
        return False


_TYPE_WORDS = {
    "boolean": "`true` or `false`",
    "null": "`null`",
    "object": "mapping",
}

_PLURALS = {"integer": "integers", "number": "numbers", "string": "strings"}

_BOUNDS = (
    ("minimum", "≥"),
    ("exclusiveMinimum", ">"),
    ("maximum", "≤"),
    ("exclusiveMaximum", "<"),
)


def _bounds(schema: dict) -> str:
    found = [f"{sign} {yaml_value(schema[word])}" for word, sign in _BOUNDS if word in schema]
    return ", ".join(found)


def _type_words(schema: dict, plural: bool = False) -> list[str]:
    types = schema.get("type", [])
    words = []
    for kind in [types] if isinstance(types, str) else types:
        if kind == "array":
            words.append(_list_words(schema))
            continue
        word = _PLURALS.get(kind, kind) if plural else kind
        word = _TYPE_WORDS.get(word, word)
        if kind == "string" and schema.get("minLength", 0) >= 1:
            word = f"non-empty {word}"
        words.append(word)
    return words


def _list_words(schema: dict) -> str:
    items = schema.get("items", {})
    lead = "non-empty list" if schema.get("minItems", 0) >= 1 else "list"
    if "enum" in items:
        return f"{lead} from " + ", ".join(f"`{yaml_value(v)}`" for v in items["enum"])
    distinct = "distinct " if schema.get("uniqueItems") else ""
    words = " or ".join(_type_words(items, plural=True))
    bounds = _bounds(items)
    return f"{lead} of {distinct}{words} {bounds}".strip() if words else lead


def allowed_values(schema: dict) -> str:
    """What the schema accepts for a key, in a few words (e.g. ``integer ≥ 1, ≤ 100``)."""
    if "enum" in schema:
        return " or ".join(f"`{yaml_value(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{yaml_value(schema['const'])}`"
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        return " or ".join(allowed_values(alternative) for alternative in alternatives)
    return f"{' or '.join(_type_words(schema))} {_bounds(schema)}".strip()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _meaning(schema: dict) -> str:
    """The key's description, with those of a mapping's values (``variants``) after it."""
    parts = [schema.get("description", "")]
    inner = schema.get("additionalProperties")
    while isinstance(inner, dict) and inner.get("description"):
        parts.append(f"each value: {inner['description']}")
        inner = inner.get("additionalProperties")
    return "; ".join(part for part in parts if part)


def render_table(schema: dict) -> str:
    """The Markdown table of every key of ``schema``, between the marker lines."""
    rows = []
    for key, subschema in schema_keys(schema):
        default = f"`{yaml_value(subschema['default'])}`" if "default" in subschema else ""
        cells = (f"`{key}`", default, allowed_values(subschema), _meaning(subschema))
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join([BEGIN, "", HEADER, *rows, "", END])


def with_table(document: str, table: str) -> str:
    """``document`` with its generated part (marker lines included) replaced by ``table``."""
    start = document.find(BEGIN)
    end = document.find(END, start)
    if start < 0 or end < 0:
        raise StaleTableError(
            f"no generated table: the lines {BEGIN!r} and {END!r} are not both in the document"
        )
    return document[:start] + table + document[end + len(END) :]


def run(args: argparse.Namespace) -> int:
    """Rewrite (or with ``--check`` only compare) the table of ``args.doc``."""
    document = args.doc.read_text()
    try:
        current = with_table(document, render_table(load_schema(args.schema)))
    except StaleTableError as error:
        print(f"imgbench config-docs: {args.doc}: {error}", file=sys.stderr)
        return 2
    if current == document:
        return 0
    if args.check:
        print(
            f"imgbench config-docs: the table of {args.doc} is not current; "
            "run `imgbench config-docs` to regenerate it",
            file=sys.stderr,
        )
        return 1
    args.doc.write_text(current)
    print(f"imgbench config-docs: table of {args.doc} regenerated", file=sys.stderr)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check", action="store_true", help="only check that the table is current (exit 1 if not)"
    )
    parser.add_argument("--doc", type=Path, default=DOC_PATH, help="the Markdown file to update")
    parser.add_argument("--schema", type=Path, default=SCHEMA_PATH, help="the config schema")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgbench config-docs", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
