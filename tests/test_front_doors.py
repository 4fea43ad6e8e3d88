"""The typed lazy front doors (config/lazy.py): one list of names, read by the type checker (the
imports under TYPE_CHECKING) and by the runtime (lazy_exports), and importing a package stays cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from config.lazy import exported_names

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ticketing", "recordings", "asr", "ivr")


@pytest.mark.parametrize("pkg", PACKAGES)
def test_every_typed_name_is_exported_and_resolves(pkg: str) -> None:
    package = importlib.import_module(pkg)
    names = exported_names((ROOT / pkg / "__init__.py").read_text(encoding="utf-8"))
    assert names and sorted(names) == package.__all__
    for name, (module, attr) in names.items():
        assert getattr(package, name) is getattr(importlib.import_module(module), attr)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = package.no_such_name


def test_importing_the_front_doors_loads_nothing_heavy() -> None:
    code = (
        "import sys, ticketing, recordings, asr, ivr\n"
        "print(sorted(m for m in ('sklearn', 'vosk', 'fastapi', 'httpx', 'ticketing.intake')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_type_checker_sees_real_types(tmp_path: Path) -> None:
    mypy = pytest.importorskip("mypy.api")
    probe = tmp_path / "probe.py"
    probe.write_text("import ticketing\nreveal_type(ticketing.submit)\n", encoding="utf-8")
    out, _err, _status = mypy.run(
        ["--ignore-missing-imports", "--no-incremental", "--follow-imports=silent", str(probe)]
    )
    assert "def (session:" in out and "ticketing.models.Ticket" in out, out
