"""Lazy front doors with real types: one helper for ticketing, recordings, asr and ivr.

A package's `__init__` lists its public names as ordinary imports inside `if TYPE_CHECKING:`, so
a type checker and an IDE see each name's real type (`reveal_type(ticketing.submit)` is the
function, not Any). At run time those imports do not run: `lazy_exports` reads that same block
from the package's source and returns `__all__` and a module `__getattr__` that imports a name's
module on first use, so importing a package stays cheap (no scikit-learn, Vosk or FastAPI until
asked for). One list of names, read by both the checker and the runtime.

    if TYPE_CHECKING:
        from ticketing.intake import submit as submit
    __all__, __getattr__ = lazy_exports(__name__, __file__)
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def exported_names(source: str) -> dict[str, tuple[str, str]]:
    """Public name → (module, attribute) from the `if TYPE_CHECKING:` imports of a module."""
    out: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                for alias in stmt.names:
                    out[alias.asname or alias.name] = (stmt.module, alias.name)
    return out


def lazy_exports(package: str, init_file: str) -> tuple[list[str], Callable[[str], Any]]:
    """`__all__` and the module `__getattr__` of a lazy front door (see the module docstring).

    Nothing is cached in the package's namespace: once `ticketing.dispatch` (a module) is
    imported, the package attribute `dispatch` is that module, so names that would collide with
    a submodule are exported under another one (`dispatch as dispatch_to_departments`)."""
    exports = exported_names(Path(init_file).read_text(encoding="utf-8"))

    def __getattr__(name: str) -> Any:
        try:
            module, attr = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(importlib.import_module(module), attr)

    return sorted(exports), __getattr__
