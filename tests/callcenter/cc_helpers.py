"""Helpers for the process-level tests of `callcenter demo` and `callcenter up`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

CLI = str(Path(sys.executable).parent / "callcenter")
SHARED = Path(__file__).resolve().parents[3] / "shared"
if not SHARED.exists():
    SHARED = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
AMI_DIR = SHARED / "fixtures" / "ami"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment without any CALLCENTER_ setting of the caller's shell, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["CALLCENTER_DATA_DIR"] = str(tmp_path / "var")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_for(cond: Callable[[], object], proc: subprocess.Popen, tries: int = 240) -> object:
    """Poll `cond` every 0.5 s until truthy (a bound on waiting, not a timing assertion);
    gives up early when the process under test has exited."""
    for _ in range(tries):
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            return cond()
        time.sleep(0.5)
    return None
