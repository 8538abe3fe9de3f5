"""The environments agree: envs/requirements.lock (exact pip versions), pyproject.toml
(ranges), envs/*.yaml (the conda envs of `--sdm conda`), ruff's target and, on CI, what
is installed. Also: each conda env holds every third-party package its rules' scripts
import, found by reading the scripts and the imgbench modules they reach with `ast`.

`--sdm conda` itself is not exercised here (no conda, no internet beyond PyPI): these
checks are what keeps the envs honest."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from ci import IN_CI, unavailable
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from workflow_runs import REPO

LOCK = REPO / "envs" / "requirements.lock"
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
RULES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
SCRIPTS = sorted((REPO / "workflow" / "scripts").glob("*.py"))
# Where the scripts find imgbench: they put workflow/ on sys.path.
IMPORT_ROOT = REPO / "workflow"
# The oldest Python the project supports: Snakemake 9 requires 3.11.
MIN_PYTHON = Version("3.11")
# The lock pins pyproject's `dependencies` plus these extras (not the dev tools).
LOCKED_EXTRAS = ("slurm",)

# conda-forge package name -> pip distribution name, where they differ.
CONDA_TO_PIP = {
    "python-lmdb": "lmdb",
    "matplotlib-base": "matplotlib",
    "py-opencv": "opencv-python-headless",
}
# Pip distributions whose version has more parts than conda-forge's build of the same
# release: opencv-python's fourth number counts its wheel builds of OpenCV x.y.z.
CONDA_RELEASE_PARTS = {"opencv-python-headless": 3}
# Top-level import name -> pip distribution name, where they differ.
IMPORT_TO_DIST = {
    "PIL": "pillow",
    "yaml": "pyyaml",
    "mpl_toolkits": "matplotlib",
    "skimage": "scikit-image",
    "cv2": "opencv-python-headless",
}
# Snakemake's script preamble appends the driving Snakemake's own search path to the job's
# sys.path and unpickles the `snakemake` object from it: a script can use snakemake
# without the package in its env (the env's Python must only be new enough for it).
PROVIDED_BY_SNAKEMAKE = {"snakemake"}


# ---- reading the files ----


def lock_pins() -> dict[str, Version]:
    """{canonical name: version} of envs/requirements.lock; every line an exact pin."""
    pins: dict[str, Version] = {}
    for number, raw in enumerate(LOCK.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specs = list(requirement.specifier)
        assert (
            len(specs) == 1
            and specs[0].operator == "=="
            and "*" not in specs[0].version
            and not requirement.marker
            and not requirement.extras
        ), f"{LOCK.name}:{number}: {raw!r} is not an exact `name==version` pin"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{LOCK.name}:{number}: {requirement.name} pinned twice"
        pins[name] = Version(specs[0].version)
    assert pins, f"{LOCK} pins nothing"
    return pins


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def runtime_requirements() -> list[Requirement]:
    """pyproject's `dependencies` plus the extras the lock pins."""
    project = pyproject()["project"]
    extras = project.get("optional-dependencies", {})
    lines = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        lines += extras[extra]
    return [Requirement(line) for line in lines]


def conda_dependencies(env_file: Path) -> dict[str, str]:
    """{conda name: version spec (may be empty)} of one conda environment file."""
    env = yaml.safe_load(env_file.read_text())
    specs: dict[str, str] = {}
    for entry in env["dependencies"]:
        assert isinstance(entry, str), (
            f"{env_file.name}: {entry!r}: a pip section is not checked by this test; "
            "list conda-forge packages only"
        )
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", entry)
        assert match, f"{env_file.name}: cannot read {entry!r}"
        specs[match[1].lower()] = match[2].replace(" ", "")
    return specs


def conda_exact_version(spec: str) -> Version | None:
    """The one version a conda spec `==V` or `=V` names; None for anything looser."""
    match = re.fullmatch(r"==?([0-9][0-9A-Za-z.+!\-]*)", spec)
    return Version(match[1]) if match else None


def conda_lowest_version(spec: str) -> Version | None:
    """The lowest version a conda spec admits (`=3.11`, `==3.11.7`, `>=3.11,<3.12`);
    None when it has no lower bound."""
    lows = []
    for clause in spec.split(","):
        # A bare version (`python 3.11`) means =3.11 to conda.
        match = re.fullmatch(r"(==|=|>=|~=)?([0-9]+(?:\.[0-9]+)*)(?:\.?\*)?", clause)
        if match:
            lows.append(Version(match[2]))
    return max(lows) if lows else None


def pip_name(conda_name: str) -> str:
    return canonicalize_name(CONDA_TO_PIP.get(conda_name, conda_name))


def lowest_python(requires_python: str) -> Version:
    """The lowest Python a `>=X.Y` requires-python admits."""
    lows = [Version(s.version) for s in SpecifierSet(requires_python) if s.operator == ">="]
    assert lows, f"requires-python {requires_python!r} has no lower bound"
    return max(lows)


def rule_blocks() -> Iterator[tuple[Path, str, dict[str, str]]]:
    """(rule file, rule name, {directive: literal value}) for `conda:` and `script:`."""
    header = re.compile(r"(?:rule|checkpoint)\s+(\w+)\s*:")
    directive = re.compile(r"\s+(conda|script):\s*(.*)")
    for path in RULES:
        lines = path.read_text().splitlines()
        name, values = None, {}
        for index, line in enumerate(lines):
            if line and not line[0].isspace() and not line.startswith("#"):
                if name:
                    yield path, name, values
                match = header.fullmatch(line.rstrip())
                name, values = (match[1], {}) if match else (None, {})
                continue
            match = directive.fullmatch(line.rstrip())
            if name and match:
                value = (
                    match[2] or next(text for text in lines[index + 1 :] if text.strip()).strip()
                )
                try:
                    values[match[1]] = ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    pytest.fail(
                        f"{path.name}, rule {name}: {match[1]} {value!r} is not a plain "
                        "string; teach tests/workflow/test_environments.py to read it"
                    )
        if name:
            yield path, name, values


def rules_with_scripts() -> list[tuple[str, Path, Path]]:
    """(rule, script, conda env file) of every rule that runs a script."""
    found = []
    for path, name, values in rule_blocks():
        if "script" not in values:
            continue
        assert "conda" in values, f"rule {name} runs a script but names no conda env"
        script = (path.parent / values["script"]).resolve()
        env = (path.parent / values["conda"]).resolve()
        assert script.is_file(), f"rule {name}: no script {script}"
        assert env.is_file(), f"rule {name}: no conda env {env}"
        found.append((name, script, env))
    return found


# ---- what a script imports ----


def module_file(module: str) -> Path | None:
    """The file of a first-party module (one under workflow/), else None."""
    base = IMPORT_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str | None:
    try:
        parts = list(path.relative_to(IMPORT_ROOT).with_suffix("").parts)
    except ValueError:
        return None  # a script: not importable as a module
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py too."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    kinds = handler.type
    caught = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
    return kinds is None or any(isinstance(k, ast.Name) and k.id in names for k in caught)


def optional_import_nodes(tree: ast.AST) -> set[int]:
    """ids of imports in a `try` whose ImportError handler carries on without them (no
    `raise`): the code works when the package is missing."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        handlers = [h for h in node.handlers if catches_import_error(h)]
        if handlers and not any(isinstance(n, ast.Raise) for h in handlers for n in ast.walk(h)):
            for statement in node.body:
                optional |= {id(n) for n in ast.walk(statement)}
    return optional


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(first-party modules, third-party top-level names) that ``path`` imports, at any
    depth (imports inside functions count); optional imports left out."""
    tree = ast.parse(path.read_text(), filename=str(path))
    optional = optional_import_nodes(tree)
    here = module_name(path)
    package = here if path.name == "__init__.py" else (here or "").rpartition(".")[0]
    local: set[str] = set()
    third: set[str] = set()

    def add(module: str) -> None:
        top = module.split(".")[0]
        if module_file(top):
            local.update(m for m in with_parents(module) if module_file(m))
        elif top not in sys.stdlib_module_names:
            third.add(top)

    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            add(base)
            for alias in node.names:
                if module_file(f"{base}.{alias.name}"):
                    add(f"{base}.{alias.name}")
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "import_module")
            )
            and node.args
        ):
            target = node.args[0]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                add(target.value)
            elif package:
                # A computed name (plugin loading): any module of this package.
                for sibling in sorted(module_file(package).parent.glob("*.py")):
                    add(module_name(sibling))
    return local, third


def third_party_imports(path: Path) -> dict[str, set[str]]:
    """{top-level import name: files importing it} over ``path`` and every first-party
    module it reaches, transitively."""
    found: dict[str, set[str]] = {}
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        local, third = imports_of(current)
        for name in third:
            found.setdefault(name, set()).add(str(current.relative_to(REPO)))
        todo += [module_file(m) for m in local]
    return found


def distribution(import_name: str) -> str:
    return canonicalize_name(IMPORT_TO_DIST.get(import_name, import_name))


# ---- the tests ----


def test_lock_pins_exactly_the_runtime_dependencies_within_pyprojects_ranges():
    pins = lock_pins()
    requirements = runtime_requirements()
    wanted = {canonicalize_name(r.name) for r in requirements}
    assert set(pins) == wanted, (
        f"lock but not pyproject: {sorted(set(pins) - wanted)}; "
        f"pyproject but not lock: {sorted(wanted - set(pins))}"
    )
    outside = [
        f"{r.name}: lock {pins[canonicalize_name(r.name)]} outside pyproject's {r.specifier}"
        for r in requirements
        if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    ]
    assert not outside, outside


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_conda_env_pins_the_locks_versions(env_file):
    pins = lock_pins()
    problems = []
    for name, spec in conda_dependencies(env_file).items():
        if name == "python":
            continue
        locked = pins.get(pip_name(name))
        parts = CONDA_RELEASE_PARTS.get(pip_name(name))
        if locked is not None and parts:
            locked = Version(".".join(str(n) for n in locked.release[:parts]))
        if locked is None:
            problems.append(f"{name}: not in {LOCK.name}")
        elif conda_exact_version(spec) != locked:
            problems.append(f"{name} {spec or '(no version)'}: the lock has {locked}")
    assert not problems, f"{env_file.name}: {problems}"


def test_python_is_at_least_the_minimum_everywhere():
    config = pyproject()
    floor = lowest_python(config["project"]["requires-python"])
    assert floor >= MIN_PYTHON, f"pyproject requires-python admits Python {floor}"
    target = re.fullmatch(r"py(\d)(\d+)", config["tool"]["ruff"]["target-version"])
    assert target, config["tool"]["ruff"]["target-version"]
    assert Version(f"{target[1]}.{target[2]}") == floor, (
        f"ruff's target-version {target[0]} is not pyproject's lowest Python {floor}"
    )
    for env_file in ENV_FILES:
        python = conda_dependencies(env_file).get("python")
        assert python is not None, f"{env_file.name} does not pin python"
        lowest = conda_lowest_version(python)
        assert lowest is not None, f"{env_file.name}: python {python!r} has no lower bound"
        assert lowest >= floor, f"{env_file.name}: python {python} admits {lowest} < {floor}"


def test_all_conda_envs_use_one_python():
    pythons = {p.name: conda_dependencies(p).get("python") for p in ENV_FILES}
    assert len(set(pythons.values())) == 1, pythons


def test_locked_libraries_support_the_lowest_python():
    """Where a locked version is installed, its Requires-Python admits pyproject's floor."""
    floor = lowest_python(pyproject()["project"]["requires-python"])
    checked, problems = 0, []
    for name, locked in lock_pins().items():
        try:
            if Version(metadata.version(name)) != locked:
                continue
            requires = metadata.metadata(name).get("Requires-Python") or ""
        except metadata.PackageNotFoundError:
            continue
        checked += 1
        if not SpecifierSet(requires).contains(floor):
            problems.append(f"{name} {locked} requires Python {requires}")
    if not checked:
        unavailable("no locked version is installed here")
    assert not problems, f"pyproject admits Python {floor}, but: {problems}"


@pytest.mark.parametrize(
    ("rule", "script", "env_file"),
    [pytest.param(*entry, id=entry[0]) for entry in rules_with_scripts()],
)
def test_conda_env_holds_what_its_script_imports(rule, script, env_file):
    available = {pip_name(name) for name in conda_dependencies(env_file)}
    missing = {
        name: sorted(files)
        for name, files in third_party_imports(script).items()
        if name not in PROVIDED_BY_SNAKEMAKE and distribution(name) not in available
    }
    assert not missing, (
        f"rule {rule} runs {script.name} in {env_file.name}, which lacks the packages of "
        f"these imports: {missing}"
    )


def test_every_conda_package_is_imported_by_a_script_run_in_it():
    needed: dict[Path, set[str]] = {}
    for _rule, script, env_file in rules_with_scripts():
        imports = third_party_imports(script)
        needed.setdefault(env_file, set()).update(distribution(name) for name in imports)
    assert needed, "no rule runs a script in a conda env"
    unused = {
        env_file.name: sorted(
            name
            for name in conda_dependencies(env_file)
            if name != "python" and pip_name(name) not in needed.get(env_file, set())
        )
        for env_file in ENV_FILES
    }
    assert not any(unused.values()), f"packages no script in the env imports: {unused}"


def test_third_party_imports_are_declared_dependencies():
    declared = {
        canonicalize_name(Requirement(r).name) for r in pyproject()["project"]["dependencies"]
    }
    sources = sorted((IMPORT_ROOT / "imgbench").rglob("*.py")) + SCRIPTS
    undeclared = {}
    for path in sources:
        for name in imports_of(path)[1]:
            if distribution(name) not in declared:
                undeclared.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert not undeclared, f"imports of packages pyproject.toml does not declare: {undeclared}"


def test_ci_installs_with_the_lock_as_constraints():
    run = (REPO / ".ci" / "run").read_text()
    installs = [line for line in run.splitlines() if re.search(r"pip install .*-e ", line)]
    assert installs, ".ci/run installs no project"
    assert all(f"-c {LOCK.relative_to(REPO)}" in line for line in installs), installs


def test_installed_versions_are_the_locks_on_ci():
    if not IN_CI:
        unavailable("outside CI (CI=true) the installed versions may differ from the lock")
    problems = []
    for name, locked in lock_pins().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: not installed (lock {locked})")
            continue
        if installed != locked:
            problems.append(f"{name}: installed {installed}, lock {locked}")
    assert not problems, problems
