"""DESIGN.md's import rules, checked on the source: no upward imports, front doors only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> packages it may import (besides itself and the standard library / third parties)
ALLOWED = {
    "config": set(),
    "ticketing": {"config"},
    "recordings": {"config"},
    "asr": {"config", "recordings", "ticketing"},
    "ivr": {"config", "ticketing", "recordings"},
    "callcenter": {"config", "ticketing", "recordings", "asr", "ivr"},
    "agent_console": {"config", "ticketing", "recordings", "callcenter", "ivr"},
}
# packages whose internals other packages must not reach into
FRONT_DOORS = {"ticketing", "recordings", "asr", "ivr"}


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _sources():
    for pkg in ALLOWED:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            yield pkg, path


@pytest.mark.parametrize(("pkg", "path"), list(_sources()), ids=lambda v: str(v))
def test_no_upward_imports(pkg, path):
    for line, module in _imports(path):
        top = module.split(".")[0]
        if top in ALLOWED and top != pkg:
            assert top in ALLOWED[pkg], f"{path.relative_to(ROOT)}:{line} imports {module}"


@pytest.mark.parametrize(("pkg", "path"), list(_sources()), ids=lambda v: str(v))
def test_other_packages_use_front_doors(pkg, path):
    for line, module in _imports(path):
        top = module.split(".")[0]
        if top in FRONT_DOORS and top != pkg and module != top:
            # models are the shared schema; `ticketing.models` etc. would be allowed here if needed
            pytest.fail(f"{path.relative_to(ROOT)}:{line} reaches into {module}; use `{top}`")


@pytest.mark.parametrize("pkg", sorted(FRONT_DOORS))
def test_front_door_names_do_not_collide_with_submodules(pkg):
    """Importing a submodule binds it on the package, so an export sharing a submodule's name
    would mean a function before that import and a module after it."""
    import importlib
    import pkgutil

    package = importlib.import_module(pkg)
    submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert not (set(package.__all__) & submodules), sorted(set(package.__all__) & submodules)
