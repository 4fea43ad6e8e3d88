"""`callcenter demo --web` feeds the agent console: the demo's simulated calls (captured Asterisk
traffic replayed through the real bridge) pop up live in a real Chromium, labelled as a
simulation. The demo runs as a user starts it (its own data folder, web and worker children)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from e2e_helpers import shot, start_service

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
AMI = ROOT.parent.parent / "shared" / "fixtures" / "ami"
if not AMI.exists():
    AMI = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve() / "fixtures" / "ami"
CHROMIUM = os.environ.get("CALLCENTER_CHROMIUM", "/usr/bin/chromium")
PORT = int(os.environ.get("CALLCENTER_E2E_PORT", "18610")) + 1
PASSWORD = "demo-admin-password"


@pytest.fixture
def demo(tmp_path, redis_server_url):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    if not AMI.exists():
        pytest.skip(f"no AMI captures at {AMI}")
    ns = f"test-demo-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CALLCENTER_REDIS_URL": redis_server_url,
        "CALLCENTER_REDIS_NAMESPACE": ns,
        "CALLCENTER_ADMIN_PASSWORD": PASSWORD,
        "CALLCENTER_LOG_JSON": "false",
    }
    for k in ("CALLCENTER_DATABASE_URL", "CALLCENTER_DATA_DIR", "CALLCENTER_CONFIG_DIR"):
        env.pop(k, None)
    log_path = tmp_path / "demo.log"
    args = ["demo", "--web", "--loop", "--scenario", "answered", "--speed", "2",
            "--port", str(PORT), "--data-dir", str(tmp_path / "demo"), "--fixtures", str(AMI)]  # fmt: skip
    with log_path.open("w") as log:
        proc = start_service(args, PORT, env, log, tmp_path)
    url = f"http://127.0.0.1:{PORT}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        r = redis.Redis.from_url(redis_server_url)
        for key in r.scan_iter(match=f"{ns}*", count=1000):
            r.delete(key)
        r.close()


def test_demo_calls_pop_up_live_in_the_console(demo):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
            page = ctx.new_page()
            page.goto(demo + "/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(demo + "/console")
            page.wait_for_selector("#sim-banner", timeout=30000)  # the calls are labelled
            assert "模拟演示" in page.inner_text("#sim-banner")
            page.fill("input[name=ext]", "8001")  # the captured agent's phone
            page.select_option("#queue-login select[name=server]", "simulated-pbx")
            for _ in range(5):  # between two replays no bridge listens for a moment
                page.click("#btn-queue-login")
                page.wait_for_selector("#status .alert", timeout=15000)
                if page.is_visible("text=已签入队列"):
                    break
            assert page.is_visible("text=已签入队列"), page.inner_text("#status")
            page.wait_for_selector("#pop-caller", timeout=90000)  # the next replayed call
            assert "13800138000" in page.inner_text("#pop-caller")
            shot(page, "26-demo-console-pop")
        finally:
            browser.close()
