"""The supervisor wallboard in a real Chromium against `callcenter run`: the replaying AMI peer
stands in for Asterisk and the real bridge (in a thread of this test) publishes live state; the
supervisor sees the queue figures change as the captured call arrives, pauses an agent through the
bridge and sees the pause on the board. The replaying peer answers QueuePause as Asterisk 22 does:
its recorded reply, then a QueueMemberPause per queue (callcenter.ami.replay)."""

from __future__ import annotations

import pytest
from e2e_helpers import AMI, BridgeThread, shot
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


@pytest.fixture
def pbx(server, tmp_path):
    if not AMI.exists():
        pytest.skip(f"no AMI captures at {AMI}")
    # the app's own data folder: the bridge stores finished calls in the app's database
    b = BridgeThread(server, server.data_dir, speed=1.0, journal=tmp_path / "calls.jsonl").start()
    yield b
    b.close()


def waiting_of(page, queue: str) -> str:
    return page.inner_text(f"tr[data-queue='{queue}'] td.q-waiting")


def test_supervisor_sees_queues_move_and_pauses_an_agent(page_for, server, pbx):
    page = page_for("supervisor")
    page.goto(server.url + "/wallboard")
    page.wait_for_selector("tr[data-queue='dxe-enterprise']", timeout=15000)
    page.wait_for_selector("#wb-conn.conn-ok", timeout=10000)
    assert waiting_of(page, "dxe-enterprise") == "0"
    agent = "tr[data-agent='pbx1|Local/8001@agents']"
    page.wait_for_selector(agent, timeout=10000)
    assert "就绪" in page.inner_text(f"{agent} td.a-state")

    pbx.resume()  # the captured call: IVR, then the caller waits in dxe-enterprise
    expect(page.locator("tr[data-queue='dxe-enterprise'] td.q-waiting")).to_have_text(
        "1", timeout=20000
    )
    shot(page, "40-wallboard-waiting")
    # 张敏 answers: on call, nobody waiting
    expect(page.locator(f"{agent} td.a-state")).to_contain_text("通话中", timeout=20000)
    expect(page.locator("tr[data-queue='dxe-enterprise'] td.q-waiting")).to_have_text(
        "0", timeout=20000
    )

    # pause 李强 (with a reason) through the bridge; the board shows it
    li = "tr[data-agent='pbx1|Local/8002@agents']"
    page.select_option(f"{li} select.wb-reason", "meeting")
    page.click(f"{li} button[data-action=pause]")
    page.wait_for_selector("#wb-result .wb-ok", timeout=10000)
    assert "已置为小休" in page.inner_text("#wb-result")
    expect(page.locator(f"{li} td.a-state")).to_contain_text("小休（会议）", timeout=10000)
    # listen without an extension: refused in Chinese, nothing sent
    page.select_option(f"{li} select.wb-spy", "listen")
    page.click(f"{li} button[data-action=spy]")
    page.wait_for_selector("#wb-result .wb-error", timeout=10000)
    assert "分机号" in page.inner_text("#wb-result")
    shot(page, "41-wallboard-paused")

    # the call ends: its record lands and the day's figures count it
    expect(page.locator("tr[data-queue='dxe-enterprise'] td.q-offered")).to_have_text(
        "1", timeout=60000
    )
    page.locator("h1").scroll_into_view_if_needed()
    shot(page, "42-wallboard-after-call")


def test_leader_watches_without_controls(page_for, server):
    page = page_for("leader")
    page.goto(server.url + "/wallboard")
    page.wait_for_selector("#wallboard", timeout=10000)
    assert page.locator("#wb-ext").count() == 0
    assert page.locator("button[data-action]").count() == 0
