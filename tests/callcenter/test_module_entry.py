"""`python -m callcenter …` runs the same CLI as the `callcenter` command (a newcomer's first try
without the venv's script on PATH)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_callcenter_is_the_cli():
    r = subprocess.run(
        [sys.executable, "-m", "callcenter", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "Usage: callcenter" in r.stdout and "run" in r.stdout
