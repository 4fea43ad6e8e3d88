"""The app's own scripts parse: one syntax error (a bad merge, say) silently kills every page's
behaviour — the screen-pop, the charts, the shortcuts. Checked with Node.js when the machine has it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "agent_console" / "web" / "static"
SCRIPTS = sorted(STATIC.glob("*.js"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_parses(script: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no Node.js on this machine to parse the scripts with")
    check = "new Function(require('fs').readFileSync(process.argv[1], 'utf8'))"
    r = subprocess.run([node, "-e", check, str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_broken_script_is_caught(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no Node.js on this machine to parse the scripts with")
    bad = tmp_path / "bad.js"
    bad.write_text("(function () {\n  var x = 1;\n", encoding="utf-8")
    check = "new Function(require('fs').readFileSync(process.argv[1], 'utf8'))"
    r = subprocess.run([node, "-e", check, str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "SyntaxError" in r.stderr
