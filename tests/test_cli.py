"""The `callcenter` console script, run as a real subprocess: --help everywhere, `user create`
end to end with --password-stdin, and `callcenter run` on embedded defaults with a clean SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from config.database import make_engine, session_scope
from ticketing.models import User

CLI = str(Path(sys.executable).parent / "callcenter")
COMMANDS = [
    [],
    ["run"],
    ["web"],
    ["worker"],
    ["db"],
    ["db", "upgrade"],
    ["user"],
    ["user", "create"],
    ["user", "list"],
    ["up"],
    ["demo"],
    ["bridge"],
    ["bridge", "run"],
    ["bridge", "simulate"],
    ["agi"],
    ["agi", "serve"],
    ["asr"],
    ["asr", "download-model"],
    ["asr", "worker"],
    ["asr", "flush-outbox"],
    ["transcribe"],
    ["outbox"],
    ["asterisk"],
    ["asterisk", "write-config"],
]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["CALLCENTER_DATA_DIR"] = str(tmp_path / "var")
    env.update(extra)
    return env


def _cli(args, env, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], input=stdin, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "callcenter")
def test_help(args, tmp_path):
    r = _cli([*args, "--help"], _env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout and "--help" in r.stdout


def test_top_level_help_lists_every_command(tmp_path):
    out = _cli(["--help"], _env(tmp_path)).stdout
    for cmd in ("run", "up", "demo", "web", "worker", "db", "user", "bridge", "agi", "asr"):
        assert re.search(rf"\b{cmd}\b", out), cmd
    assert "transcribe" in out


def test_help_tells_run_up_and_demo_apart(tmp_path):
    """`make run` has no PBX side; `up` adds it; `demo` is labelled a simulation."""
    env = _env(tmp_path)

    def text(args: list[str]) -> str:  # rich wraps help in boxes: compare the words only
        return " ".join(re.sub(r"[│╭╮╰╯─]", " ", _cli(args, env).stdout).split())

    assert "no PBX" in text(["run", "--help"])
    up = text(["up", "--help"])
    assert "AMI bridge" in up and "FastAGI" in up
    demo = text(["demo", "--help"])
    assert "SIMULATION" in demo and "模拟演示" in demo


def test_help_does_not_load_heavy_modules(tmp_path):
    """--help must stay fast: the sub-apps' modules must not import Vosk or scikit-learn."""
    code = (
        "import sys; from typer.testing import CliRunner; from callcenter.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
        "print(sorted(m for m in ('vosk', 'sklearn', 'jieba', 'uvicorn') if m in sys.modules))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_user_create_with_password_stdin(db_url, tmp_path):
    env = _env(tmp_path, CALLCENTER_DATABASE_URL=db_url)
    assert _cli(["db", "upgrade"], env).returncode == 0
    password = "s3cret-password-never-echoed"
    r = _cli(
        [
            "user",
            "create",
            "alice",
            "--role",
            "handler",
            "--department",
            "SCJG",
            "--password-stdin",
        ],
        env,
        stdin=password + "\n",
    )
    assert r.returncode == 0, r.stderr
    assert password not in r.stdout + r.stderr
    assert "alice" in r.stdout
    engine = make_engine(db_url)
    from argon2 import PasswordHasher

    with session_scope(engine, read_only=True) as s:
        alice = s.exec(select(User).where(User.username == "alice")).one()
        assert alice.role == "handler" and alice.department_code == "SCJG"
        assert alice.password_hash.startswith("$argon2id$")
        assert PasswordHasher().verify(alice.password_hash, password)
    listed = _cli(["user", "list"], env)
    assert listed.returncode == 0 and re.search(r"alice\thandler\tSCJG\tactive", listed.stdout)

    bad = [
        (["bob", "--role", "emperor", "--password-stdin"], "unknown role"),
        (["bob", "--role", "handler", "--password-stdin"], "needs --department"),
        (
            ["bob", "--role", "handler", "--department", "NOPE", "--password-stdin"],
            "unknown department",
        ),
        (["alice", "--role", "agent", "--password-stdin"], "already exists"),
        (["Alice", "--role", "agent", "--password-stdin"], "already exists"),  # any case
    ]
    for args, message in bad:
        r = _cli(["user", "create", *args], env, stdin=password + "\n")
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
    # the web's password rule (ticketing.users.password_problem), not a laxer one of its own
    for weak, message in (
        ("short", "至少需要 8"),
        (" " * 12, "至少需要 8"),
        ("password", "过于常见"),
    ):
        r = _cli(
            ["user", "create", "bob", "--role", "agent", "--password-stdin"], env, stdin=weak + "\n"
        )
        assert r.returncode == 2 and message in r.stderr, (weak, r.stderr)
    with session_scope(engine, read_only=True) as s:
        assert [u.username for u in s.exec(select(User))] == ["alice"]
    engine.dispose()


def test_outbox_shows_the_texts_a_test_install_keeps(db_url, tmp_path):
    """With the default gateway nothing leaves the machine: `callcenter outbox` is where a
    newcomer reads a notice's link or a 进度查询 code (phone masked, newest first)."""
    from ticketing.models import OutboxMessage

    env = _env(tmp_path, CALLCENTER_DATABASE_URL=db_url)
    assert _cli(["db", "upgrade"], env).returncode == 0
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        s.add(
            OutboxMessage(
                to_phone="+8613912345678", body="【店小二】验证码 482913", status="logged"
            )
        )
        s.add(OutboxMessage(to_phone="+8613800001111", body="【店小二】受理告知 http://x/n/1"))
    engine.dispose()
    r = _cli(["outbox"], env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and "受理告知" in lines[0] and "验证码 482913" in lines[1]
    assert "13912345678" not in r.stdout and "+86139****5678" in r.stdout
    r = _cli(["outbox", "--phone", "139 1234 5678"], env)
    assert r.returncode == 0 and r.stdout.count("\n") == 1 and "482913" in r.stdout
    r = _cli(["outbox", "--phone", "12"], env)
    assert r.returncode == 2 and "error:" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _redis_servers_for(socket_path: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "redis-server" in cmd and socket_path in cmd and _pid_alive(int(p.name)):
            pids.append(int(p.name))
    return pids


@pytest.mark.timeout(240)
def test_run_embedded_starts_serves_and_stops_cleanly(tmp_path):
    port = _free_port()
    env = _env(tmp_path, CALLCENTER_PORT=str(port), CALLCENTER_ADMIN_PASSWORD="first-admin-pw")
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [CLI, "run"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    try:
        base = f"http://127.0.0.1:{port}"
        healthy = False
        for _ in range(240):  # poll until up (no timing assertion: just a bound on waiting)
            if proc.poll() is not None:
                break
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    healthy = True
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert healthy, log_path.read_text()[-3000:]
        r = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "admin", "password": "first-admin-pw"}
        )
        assert r.status_code == 200
        assert (tmp_path / "var" / "callcenter.db").exists()
        running = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
        url = next(e["url"] for e in running if e.get("event") == "embedded_redis_started")
        assert _redis_servers_for(url.removeprefix("unix://")), "embedded redis-server not found"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    started = next(e for e in events if e.get("event") == "embedded_redis_started")
    sock = started["url"].removeprefix("unix://")
    children = next(e for e in events if e.get("event") == "started")["pids"]
    assert any(e.get("event") == "embedded_redis_stopped" for e in events)
    assert _redis_servers_for(sock) == []
    assert not any(_pid_alive(pid) for pid in children)


def test_first_admin_generated_once(tmp_path, monkeypatch):
    from argon2 import PasswordHasher

    from callcenter.run import ensure_first_admin, prepare_database
    from config.settings import Settings

    monkeypatch.delenv("CALLCENTER_ADMIN_PASSWORD", raising=False)
    settings = Settings(data_dir=tmp_path / "var", database_url=f"sqlite:///{tmp_path / 'a.db'}")
    prepare_database(settings)
    printed: list[str] = []
    password = ensure_first_admin(settings, echo=printed.append)
    assert password and len(printed) == 1 and password in printed[0]
    assert ensure_first_admin(settings, echo=printed.append) is None and len(printed) == 1
    engine = make_engine(settings.resolved_database_url)
    with session_scope(engine, read_only=True) as s:
        admin = s.exec(select(User)).one()
        assert admin.username == "admin" and admin.role == "admin"
        assert PasswordHasher().verify(admin.password_hash, password)
    engine.dispose()


def test_asterisk_write_config_from_settings_and_names_what_is_missing(tmp_path):
    out = tmp_path / "pbx-etc"
    r = _cli(["asterisk", "write-config", "--out", str(out)], _env(tmp_path))
    assert r.returncode == 2 and "CALLCENTER_ASTERISK__0__SECRET" in r.stderr
    env = _env(
        tmp_path,
        CALLCENTER_ASTERISK__0__SECRET="cli-secret",
        CALLCENTER_ASTERISK__0__VOICEMAIL_PIN="9753",
        CALLCENTER_AGI_PORT="18577",
    )
    r = _cli(["asterisk", "write-config", "--out", str(out)], env)
    assert r.returncode == 0, r.stderr
    assert "DXE_AGI = agi://127.0.0.1:18577/ivr" in (out / "extensions.conf").read_text()
    assert "secret = cli-secret" in (out / "manager.conf").read_text()
    assert "cli-secret" not in r.stdout  # the secret is written, never printed
