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
    "agent_console": {"config", "ticketing", "recordings", "callcenter"},
}
# packages whose internals other packages must not reach into
FRONT_DOORS = {"ticketing", "recordings", "asr", "ivr"}
# The one exception to ALLOWED: the web app mounts the IVR's Twilio webhooks (ivr/twiml.py) on its
# own FastAPI app, so Twilio reaches the same process as the console; it takes that one name.
EXCEPTIONS = {("agent_console", "ivr"): {"build_twilio_router"}}


def _imports(path: Path):
    """(line, module, names imported from it; empty for a plain `import module`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, set()


def _sources():
    for pkg in ALLOWED:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            yield pkg, path


@pytest.mark.parametrize(("pkg", "path"), list(_sources()), ids=lambda v: str(v))
def test_no_upward_imports(pkg, path):
    for line, module, names in _imports(path):
        top = module.split(".")[0]
        if top in ALLOWED and top != pkg and top not in ALLOWED[pkg]:
            allowed = EXCEPTIONS.get((pkg, top), set())
            assert module == top and names and names <= allowed, (
                f"{path.relative_to(ROOT)}:{line} imports {module} {sorted(names)}"
            )


@pytest.mark.parametrize(("pkg", "path"), list(_sources()), ids=lambda v: str(v))
def test_other_packages_use_front_doors(pkg, path):
    """Neither `import ticketing.intake` nor `from ticketing import intake`: the front door's names."""
    for line, module, names in _imports(path):
        top = module.split(".")[0]
        if top not in FRONT_DOORS or top == pkg:
            continue
        if module != top:
            pytest.fail(f"{path.relative_to(ROOT)}:{line} reaches into {module}; use `{top}`")
        inner = names & _submodules(top)
        assert not inner, f"{path.relative_to(ROOT)}:{line} imports {top}'s modules {sorted(inner)}"


def _submodules(pkg: str) -> set[str]:
    return {p.stem for p in (ROOT / pkg).glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in (ROOT / pkg).glob("*/__init__.py")
    }


@pytest.mark.parametrize("pkg", sorted(FRONT_DOORS))
def test_front_door_names_do_not_collide_with_submodules(pkg):
    """Importing a submodule binds it on the package, so an export sharing a submodule's name
    would mean a function before that import and a module after it."""
    import importlib
    import pkgutil

    package = importlib.import_module(pkg)
    submodules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert not (set(package.__all__) & submodules), sorted(set(package.__all__) & submodules)
