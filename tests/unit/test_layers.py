"""The package's layout: each sub-package imports only the layers below it, so the import
graph points one way (no cycles between the parts, nothing low importing something high).
Lazy imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "workflow" / "imgbench"

# Lowest first. A module may import its own layer and the layers before it.
LAYERS = [
    "system",
    "methods",
    "experiment",
    "data",
    "harness",
    "results",
    "report",
    "jobs",
    "cli",
]


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_parts(path: Path) -> set[str]:
    """The imgbench parts that ``path`` imports, absolute or relative, at any depth."""
    here = path.relative_to(PACKAGE).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
            found |= {n[1] for n in names if n[0] == "imgbench" and len(n) > 1}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - (node.level - 1)])
                target = base + [p for p in (node.module or "").split(".") if p]
            elif node.module and node.module.split(".")[0] == "imgbench":
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                found.add(target[0])
            else:
                found |= {alias.name for alias in node.names}
    return found


def modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
    )


def test_every_module_belongs_to_a_layer():
    assert {part_of(p) for p in modules()} <= set(LAYERS)


def test_imports_point_down():
    upward = []
    for path in modules():
        rank = LAYERS.index(part_of(path))
        for part in imported_parts(path):
            if part in LAYERS and LAYERS.index(part) > rank:
                upward.append(f"{path.relative_to(PACKAGE)} imports {part}")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule above can fail: a system module importing the harness is caught."""
    fake = tmp_path / "imgbench"
    (fake / "system").mkdir(parents=True)
    (fake / "system" / "bad.py").write_text("def f():\n    from imgbench.harness import x\n")
    (fake / "system" / "rel.py").write_text("from ..results import stats\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert imported_parts(fake / "system" / "bad.py") == {"harness"}
    assert imported_parts(fake / "system" / "rel.py") == {"results"}
