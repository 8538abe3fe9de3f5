"""sources: the package modules a script imports, declared as its rule's inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from imgbench.jobs import sources

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "workflow" / "imgbench"
SCRIPTS = REPO / "workflow" / "scripts"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_follows_absolute_relative_nested_and_lazy_imports(tmp_path):
    package = tmp_path / "imgbench"
    write(package / "__init__.py", "")
    write(package / "a.py", "def f():\n    from . import b\n    return b\n")
    write(package / "b.py", "from .sub.c import thing\n")
    write(package / "sub" / "__init__.py", "")
    write(package / "sub" / "c.py", "from .. import d\nthing = 1\n")
    write(package / "d.py", "import json\n")
    write(package / "unused.py", "")
    script = write(tmp_path / "script.py", "from imgbench import a\n")
    found = {p.relative_to(package).as_posix() for p in sources.closure([script], package)}
    assert found == {"__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py", "d.py"}


def test_names_imported_from_a_package_count_as_that_package(tmp_path):
    package = tmp_path / "imgbench"
    write(package / "__init__.py", "")
    write(package / "methods" / "__init__.py", "def get_method(name): ...\n")
    script = write(tmp_path / "script.py", "from imgbench.methods import get_method\n")
    found = {p.relative_to(package).as_posix() for p in sources.closure([script], package)}
    assert found == {"__init__.py", "methods/__init__.py"}


def test_store_jobs_declare_what_storeref_imports():
    """The hand-written list this replaced left out atomic.py, which storeref imports."""
    found = {p.name for p in sources.closure([SCRIPTS / "store.py"], PACKAGE)}
    assert {"measure.py", "storeref.py", "atomic.py", "memory.py", "pool.py"} <= found


def test_closure_covers_what_each_script_really_loads():
    """Import each script's imgbench modules in a fresh interpreter: every module of the
    package it loads is in its closure (method modules, loaded by name, excepted)."""
    for script in sorted(SCRIPTS.glob("*.py")):
        declared = {p.resolve() for p in sources.closure([script], PACKAGE)}
        imports = [
            line
            for line in script.read_text().splitlines()
            if line.startswith(("from imgbench", "import imgbench"))
        ]
        probe = "\n".join(
            [
                f"import sys; sys.path.insert(0, {str(PACKAGE.parent)!r})",
                *imports,
                "import pathlib",
                "for m in list(sys.modules.values()):",
                "    f = getattr(m, '__file__', None)",
                "    if m.__name__.startswith('imgbench') and f: print(pathlib.Path(f).resolve())",
            ]
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        loaded = {Path(line) for line in result.stdout.split()}
        loaded = {p for p in loaded if p.parent.name != "methods" or p.name == "__init__.py"}
        assert loaded <= declared, (script.name, sorted(loaded - declared))
