"""Storage methods: one module per method, all with the same small interface.

A method module defines

``store(store_dir, images, labels, *, fsync)``
    write ``images`` (N, H, W, C) uint8 and ``labels`` (N,) into the directory
    ``store_dir`` (which exists and is empty; everything in it belongs to the store).
    With ``fsync`` the method uses its library's own durability switch where there
    is one; the harness then fsyncs every file and directory of the store as well.
``read(store_dir) -> (images, labels)``
    read the whole store back into a numpy array and a label array.
``DESCRIPTION``
    one line for legends and tables.

Adding a format is one new module here plus its name in ``config.yaml``'s ``methods``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

METHODS_DIR = Path(__file__).resolve().parent


def available_methods() -> list[str]:
    """Names of all method modules in this package."""
    return sorted(p.stem for p in METHODS_DIR.glob("*.py") if not p.stem.startswith("_"))


def get_method(name: str) -> ModuleType:
    """Import the module implementing storage method ``name``."""
    if name not in available_methods():
        raise ValueError(
            f"unknown storage method {name!r}; choose one of {available_methods()} "
            f"or add a module workflow/imgbench/methods/{name}.py"
        )
    return importlib.import_module(f"{__name__}.{name}")


def module_path(name: str) -> Path:
    """Path of the module implementing ``name`` (declared as a rule input)."""
    return METHODS_DIR / f"{name}.py"
