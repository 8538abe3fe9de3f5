"""The package modules a script runs: declared as rule inputs, so editing one reruns the
jobs that use it and nothing else.

``closure`` follows the ``imgbench`` imports of a script (absolute and relative, at any
depth of the file, lazy imports included) through the package, so a rule's list of helper
modules cannot miss one that a helper imports. Method modules, which the harness imports
by name at run time, are not reached this way: a rule declares its own method's module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "imgbench"


def _module_file(package_dir: Path, parts: list[str]) -> Path | None:
    """The file of module ``imgbench.<parts>``: a module file or a package's __init__."""
    base = package_dir.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _own_parts(path: Path, package_dir: Path) -> list[str] | None:
    """``path``'s package as a list of names below imgbench (None outside the package)."""
    try:
        relative = path.resolve().relative_to(package_dir.resolve())
    except ValueError:
        return None
    return list(relative.parent.parts)


def imports(path: Path, package_dir: Path) -> set[Path]:
    """The files of the package that ``path`` imports directly."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    here = _own_parts(Path(path), package_dir)
    found: set[Path] = set()

    def add(parts: list[str]) -> None:
        # Every package on the way is imported too (its __init__ runs).
        for depth in range(len(parts) + 1):
            module = _module_file(package_dir, parts[:depth])
            if module is not None:
                found.add(module)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] == PACKAGE:
                    add(names[1:])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if here is None:
                    continue
                base = here[: len(here) - (node.level - 1)]
            elif node.module and node.module.split(".")[0] == PACKAGE:
                base = []
            else:
                continue
            module_parts = [p for p in (node.module or "").split(".") if p]
            if not node.level:
                module_parts = module_parts[1:]
            parts = base + module_parts
            add(parts)
            for alias in node.names:
                if _module_file(package_dir, [*parts, alias.name]) is not None:
                    add([*parts, alias.name])
    return found


def closure(paths: Iterable[Path], package_dir: Path) -> list[Path]:
    """The package files that ``paths`` import, directly or through each other, sorted."""
    package_dir = Path(package_dir)
    seen: set[Path] = set()
    todo = [Path(p) for p in paths]
    while todo:
        current = todo.pop()
        for module in imports(current, package_dir):
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return sorted(seen)
