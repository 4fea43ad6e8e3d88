"""The agent console in a real Chromium against `callcenter run`, with the replaying AMI peer
standing in for Asterisk and the real bridge (in a thread of this test) publishing live state and
serving queue commands over Redis: the agent logs in to a queue through the bridge, the captured
call rings the agent's phone, the screen-pop shows the caller, the agent files the ticket during
the call (no second ticket), wraps up with a disposition code."""

from __future__ import annotations

import time

import pytest
from e2e_helpers import AMI, BridgeThread, shot

pytestmark = pytest.mark.e2e


@pytest.fixture
def pbx(server, tmp_path):
    if not AMI.exists():
        pytest.skip(f"no AMI captures at {AMI}")
    b = BridgeThread(server, tmp_path).start()
    yield b
    b.close()


def test_queue_login_screen_pop_ticket_and_wrap_up(page_for, server, pbx):
    page = page_for("agent")
    assert page.url.endswith("/console")
    shot(page, "20-console-idle")
    page.fill("input[name=ext]", "80a")  # not a number: refused in Chinese, nothing sent
    page.click("#btn-queue-login")
    page.wait_for_selector("text=分机号应为 2-8 位数字", timeout=10000)
    page.fill("input[name=ext]", "8001")
    for box in page.locator("#queue-login input[name=queues]").all():
        box.uncheck()
    page.check("#queue-login label:has-text('企业服务') input")
    page.click("#btn-queue-login")
    page.wait_for_selector("text=已签入队列", timeout=10000)
    assert page.is_visible("#agent-state")
    page.wait_for_timeout(500)  # the SSE stream opens after the swap

    pbx.resume()  # the captured call rings agent 8001 about 7 s later at speed 1.5
    started = time.monotonic()
    page.wait_for_selector("#pop-caller", timeout=20000)
    waited = time.monotonic() - started
    assert "13800138000" in page.inner_text("#pop-caller")
    assert "1" in page.inner_text(".pop-head")  # the IVR path (企业服务 = 1)
    assert waited < 15, waited
    shot(page, "21-console-pop")

    page.select_option("#pop-form select[name=urgency]", "general")
    page.fill("#pop-form textarea[name=content]", "来电咨询企业开办营业执照办理进度")
    page.click("#pop-save")
    page.wait_for_selector("#pop-ticket", timeout=10000)
    number = page.inner_text("#pop-ticket")
    assert number.startswith("DXE-")
    shot(page, "22-console-ticket")
    page.select_option("select[name=disposition]", "ticket")
    page.click("text=完成话后处理")
    page.wait_for_selector("text=话后小结：已登记工单", timeout=10000)

    # the ticket is the call's: hotline channel, the call's id, the caller's number
    ticket = page.context.new_page()
    ticket.goto(f"{server.url}/tickets/{number}")
    assert "热线电话" in ticket.inner_text(".kv")
    assert "话后小结" in ticket.inner_text(".timeline")
    ticket.close()
