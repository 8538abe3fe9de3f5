"""The documentation stays true to the tree: the table of config keys in
docs/configuration.md is the one the schema generates, and every relative link (with its
#anchor), every repository path and every ``imgbench.…`` module that README.md,
CONTRIBUTING.md and docs/*.md name exists. A module or test renamed without its docs fails
here, naming the document and the path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imgbench.experiment import config_docs
from imgbench.experiment.config import load_schema

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "workflow" / "imgbench"
DOCUMENTS = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").glob("*.md")])

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# A path from the repository's root; not part of a longer path (results/data/... is not
# data/...). Templates (<size>, {i}, *) are left out where they are found.
ROOT_PATH = re.compile(r"(?<![\w./-])((?:workflow|tests|docs|profiles|envs|\.ci)/[\w./<>{}*-]*)")
# A module of the package named by its path below workflow/imgbench/ (harness/measure.py).
PACKAGE_PATH = re.compile(
    r"(?<![\w./-])((?:system|methods|experiment|data|harness|results|report|jobs)/\w+\.py)"
)
MODULE = re.compile(r"(?<![\w.])imgbench(?:\.\w+)+")


def prose_lines(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    names = set()
    for line in prose_lines(path):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            names.add(base if count == 0 else f"{base}-{count}")
    return names


def relative(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


# --- the generated table ------------------------------------------------------------------


def test_configuration_table_is_the_schemas():
    document = config_docs.DOC_PATH.read_text()
    table = config_docs.render_table(load_schema(config_docs.SCHEMA_PATH))
    assert config_docs.with_table(document, table) == document, (
        "docs/configuration.md's table of config keys is not the schema's: run "
        "`imgbench config-docs` (or PYTHONPATH=workflow python -m "
        "imgbench.experiment.config_docs) and commit the result"
    )


def test_every_schema_key_has_a_described_row():
    schema = load_schema(config_docs.SCHEMA_PATH)
    table = config_docs.render_table(schema)
    keys = [key for key, _ in config_docs.schema_keys(schema)]
    assert "busy.foreign_cpu_cores" in keys and "plot.spread" in keys and "busy" not in keys
    for key, subschema in config_docs.schema_keys(schema):
        assert subschema.get("description"), f"config key {key} has no description"
        assert f"| `{key}` |" in table


SCHEMA = {
    "properties": {
        "size": {
            "type": "integer",
            "minimum": 1,
            "maximum": 9,
            "default": 3,
            "description": "a size | a pipe",
        },
        "group": {
            "type": "object",
            "properties": {
                "mode": {"enum": ["on", "off", True], "default": "on", "description": "how"},
                "either": {
                    "anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"const": "auto"}],
                    "description": "a count or auto",
                },
            },
        },
        "names": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1},
            "default": ["a b", "4:2:0"],
            "description": "names",
        },
        "map": {
            "type": "object",
            "additionalProperties": {"type": "object", "description": "options of one"},
            "default": {},
            "description": "a mapping",
        },
    }
}


def test_rows_render_types_bounds_defaults_and_nesting_generically():
    rows = config_docs.render_table(SCHEMA).splitlines()
    assert "| `size` | `3` | integer ≥ 1, ≤ 9 | a size \\| a pipe |" in rows
    assert '| `group.mode` | `"on"` | `"on"` or `"off"` or `true` | how |' in rows
    assert "| `group.either` |  | integer > 0 or `auto` | a count or auto |" in rows
    assert (
        '| `names` | `[a b, "4:2:0"]` | non-empty list of distinct non-empty strings | names |'
        in rows
    )
    assert "| `map` | `{}` | mapping | a mapping; each value: options of one |" in rows
    assert rows[0] == config_docs.BEGIN and rows[-1] == config_docs.END


def test_table_replaces_only_the_marked_part():
    table = config_docs.render_table(SCHEMA)
    old = f"intro\n{config_docs.BEGIN}\nold rows\n{config_docs.END}\noutro\n"
    assert config_docs.with_table(old, table) == f"intro\n{table}\noutro\n"
    with pytest.raises(config_docs.StaleTableError):
        config_docs.with_table("no markers here\n", table)


def test_check_mode_reports_a_stale_table_without_writing(tmp_path, capsys):
    schema = tmp_path / "schema.yaml"
    schema.write_text(config_docs.SCHEMA_PATH.read_text())
    doc = tmp_path / "configuration.md"
    stale = f"# Keys\n{config_docs.BEGIN}\n| old |\n{config_docs.END}\n"
    doc.write_text(stale)
    assert config_docs.main(["--check", "--doc", str(doc), "--schema", str(schema)]) == 1
    assert doc.read_text() == stale and "not current" in capsys.readouterr().err
    assert config_docs.main(["--doc", str(doc), "--schema", str(schema)]) == 0
    assert "`busy.foreign_cpu_cores`" in doc.read_text()
    assert config_docs.main(["--check", "--doc", str(doc), "--schema", str(schema)]) == 0


# --- the README ---------------------------------------------------------------------------


def test_readme_is_a_front_door_with_the_test_command():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 260, "the README is the front door: move detail to docs/"
    commands = [line.split("#")[0].strip() for line in readme.splitlines()]
    assert "pytest" in commands, ".ci/run runs the README's test command, `pytest`"
    assert re.search(r'pytest -m "not e2e and not slurm"\s+# the unit tests: about \d+', readme)
    for command in ("snakemake --cores 4", "snakemake --report report.html"):
        assert command in commands


# --- links, paths and modules -------------------------------------------------------------


def broken_links(document: Path) -> list[str]:
    broken = []
    for line in prose_lines(document):
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            linked = (document.parent / file_part).resolve() if file_part else document
            if not linked.exists():
                broken.append(f"{target} (no file {file_part})")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{target} (no heading #{anchor} in {relative(linked)})")
    return broken


def missing_paths(document: Path) -> list[str]:
    missing = set()
    for line in document.read_text().splitlines():
        for path in ROOT_PATH.findall(line):
            path = path.rstrip(".,;:")
            if re.search(r"[<>{}*]", path):
                continue
            if not (REPO / path).exists():
                missing.add(path)
        for path in PACKAGE_PATH.findall(line):
            if not (PACKAGE / path).exists():
                missing.add(f"{path} (in workflow/imgbench/)")
    return sorted(missing)


def is_module(parts: list[str]) -> bool:
    base = PACKAGE.parent.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def missing_modules(document: Path) -> list[str]:
    """``imgbench.a.b`` names whose module does not exist; the last part may be a name
    inside the module (``imgbench.jobs.sources.closure``)."""
    missing = set()
    for line in document.read_text().splitlines():
        for name in MODULE.findall(line):
            parts = name.split(".")
            if not (is_module(parts) or is_module(parts[:-1])):
                missing.add(name)
    return sorted(missing)


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_relative_links_resolve(document):
    assert broken_links(document) == [], f"{relative(document)} links to what is not there"


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_named_paths_exist(document):
    assert missing_paths(document) == [], f"{relative(document)} names paths that do not exist"


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_named_modules_exist(document):
    assert missing_modules(document) == [], f"{relative(document)} names modules not there"


def test_the_checks_catch_what_they_check(tmp_path):
    document = tmp_path / "doc.md"
    document.write_text(
        "# A title: `with` code\n\n"
        "[ok](#a-title-with-code) [gone](#no-such) [file](missing.md)\n"
        "`workflow/imgbench/harness/measure.py` `workflow/imgbench/nowhere.py`\n"
        "`harness/nowhere.py` `results/data/pool_<size>px_images.npy`\n"
        "`imgbench.jobs.sources.closure` `imgbench.nowhere.thing`\n"
        "```yaml\n# not a heading: [x](also-missing.md)\n```\n"
    )
    assert broken_links(document) == [
        "#no-such (no heading #no-such in doc.md)",
        "missing.md (no file missing.md)",
    ]
    assert missing_paths(document) == [
        "harness/nowhere.py (in workflow/imgbench/)",
        "workflow/imgbench/nowhere.py",
    ]
    assert missing_modules(document) == ["imgbench.nowhere.thing"]
