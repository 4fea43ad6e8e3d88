"""End-to-end fixtures: the app started as `make run` starts it (`callcenter run`: migrations,
departments, RQ worker, scheduler and uvicorn as real processes, SQLite in a temporary data
folder, Redis), users made with `callcenter user create`, and Debian's Chromium driven by
Playwright (never a downloaded browser). No Chromium: every e2e test skips, saying why."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from e2e_helpers import phones_as_captured, start_service

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CALLCENTER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PORT = int(os.environ.get("CALLCENTER_E2E_PORT", "18610"))
PASSWORD = "e2e-password-123"
# username -> (role, department)
USERS = {
    "dispatcher": ("dispatcher", None),
    "agent": ("agent", None),
    "supervisor": ("supervisor", None),
    "handler": ("handler", "SCJG"),
    "handler_b": ("handler", "SWJ"),
    "leader": ("leader", None),
}


def _chromium_missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


@dataclass
class Server:
    url: str
    env: dict[str, str]
    data_dir: Path
    redis_url: str
    namespace: str

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "callcenter.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )


@pytest.fixture(scope="session")
def server(tmp_path_factory, redis_server_url) -> Iterator[Server]:
    reason = _chromium_missing()
    if reason:
        pytest.skip(reason)
    data = tmp_path_factory.mktemp("e2e")
    ns = f"test-e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CALLCENTER_DATA_DIR": str(data / "var"),
        "CALLCENTER_REDIS_URL": redis_server_url,
        "CALLCENTER_REDIS_NAMESPACE": ns,
        "CALLCENTER_ADMIN_PASSWORD": PASSWORD,
        "CALLCENTER_LOG_JSON": "false",
        # empty: every policy file falls back to the bundled default; a test may drop one here
        "CALLCENTER_CONFIG_DIR": str(data / "config"),
    }
    (data / "config").mkdir()
    # the replayed captures ring Local-channel agents, not the shipped PJSIP phones
    for name, cfg in phones_as_captured().items():
        (data / "config" / name).write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    env.pop("CALLCENTER_DATABASE_URL", None)
    log = (data / "server.log").open("w")
    proc = start_service(["run", "--host", "127.0.0.1", "--port", str(PORT)], PORT, env, log, data)
    url = f"http://127.0.0.1:{PORT}"
    srv = Server(url, env, data / "var", redis_server_url, ns)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail("callcenter run exited:\n" + (data / "server.log").read_text())
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("callcenter run did not answer:\n" + (data / "server.log").read_text())
            time.sleep(0.3)
        for name, (role, dept) in USERS.items():
            args = ["user", "create", name, "--role", role, "--password-stdin"]
            if dept:
                args += ["--department", dept]
            r = srv.cli(*args, stdin=PASSWORD + "\n")
            assert r.returncode == 0, r.stdout + r.stderr
        yield srv
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        import redis

        r = redis.Redis.from_url(redis_server_url)
        for key in r.scan_iter(match=f"{ns}*", count=1000):
            r.delete(key)
        r.close()


@pytest.fixture(scope="module")
def browser(server) -> Iterator:
    """Per module, not per session: Playwright's sync API keeps an event loop running in this
    thread until it stops, which would break every async test collected after the e2e ones."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page_for(browser, server):
    """page_for(username) -> a logged-in page of its own browser context (1366x768)."""
    contexts = []

    def make(username: str):
        ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto(server.url + "/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    yield make
    for ctx in contexts:
        ctx.close()
