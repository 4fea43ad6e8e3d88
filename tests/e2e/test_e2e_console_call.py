"""The agent's whole call in a real Chromium against `callcenter run`, with the replaying AMI peer
for Asterisk and the real bridge serving the console's commands: log in, queue log-in, ready (by
keyboard), the call rings (screen-pop), the ticket is filed and then corrected during the call
(urgency with a reason, by Alt+S), a note (Alt+N), a blind transfer the PBX refuses (shown in
Chinese), a callback scheduled (listed at once), the caller hangs up → wrap-up (paused with reason
wrapup, countdown) → auto-ready after the configured time (QueuePause false) → disposition.
The replay holds twice: before the call (until the agent is ready) and mid-call (until the agent
has done its work)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
import yaml
from e2e_helpers import AMI, BridgeThread, phones_as_captured, shot

from callcenter.ami.replay import Transcript, parse_frame

pytestmark = pytest.mark.e2e
WRAPUP_SECONDS = 3


def _count_through(tr: Transcript, event: str) -> int:
    for i, f in enumerate(tr.conns[1].stream):
        if parse_frame(f.data).get("event") == event:
            return i + 1
    raise LookupError(event)


@pytest.fixture
def pbx(server, tmp_path):
    if not AMI.exists():
        pytest.skip(f"no AMI captures at {AMI}")
    override = server.data_dir.parent / "config" / "console.yaml"
    cfg = phones_as_captured()["console.yaml"]
    cfg["wrapup_seconds"] = WRAPUP_SECONDS
    override.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    # the capture replayed again is the same call: forget what an earlier test did with it
    r = redis.Redis.from_url(server.redis_url)
    for key in r.scan_iter(match=f"{server.namespace}:console:call:*"):
        r.delete(key)
    r.close()
    # held before its first event and again right after AgentConnect
    held = (1, _count_through(Transcript.load(AMI, "scenario-answered"), "AgentConnect"))
    b = BridgeThread(server, tmp_path, pause_at=held).start()
    yield b
    b.close()
    override.unlink()


def test_agent_call_edit_note_transfer_callback_wrapup_auto_ready(page_for, server, pbx):
    page = page_for("agent")
    if page.is_visible("#btn-logout-queue"):  # still seated from an earlier test of the session
        page.click("#btn-logout-queue")
        page.wait_for_selector("text=已签出", timeout=10000)
    page.fill("input[name=ext]", "8001")
    for box in page.locator("#queue-login input[name=queues]").all():
        box.uncheck()
    page.check("#queue-login label:has-text('企业服务') input")
    page.click("#btn-queue-login")
    page.wait_for_selector("text=已签入队列", timeout=10000)
    page.wait_for_timeout(500)  # htmx wires the swapped-in forms once they settle
    page.keyboard.press("Alt+R")  # ready, by keyboard
    page.wait_for_selector("#status >> text=已就绪", timeout=10000)
    assert [a for a in pbx.sent("QueuePause") if a.get("paused") == "false"]
    assert page.is_visible("#shortcuts >> text=话后小结")  # the shortcuts are on the page
    page.wait_for_timeout(500)  # the SSE stream opens after the swap

    pbx.wait_paused()
    pbx.resume()  # the call: IVR, queue, rings 8001, answered — then held mid-call
    page.wait_for_selector("#pop-caller", timeout=20000)
    assert "13800138000" in page.inner_text("#pop-caller")
    pbx.wait_paused()
    page.wait_for_selector("#agent-state[data-state=on-call]", timeout=10000)

    if page.is_visible("#pop-form"):  # (the replayed call may have its ticket from an earlier test)
        page.select_option("#pop-form select[name=urgency]", "general")
        page.fill("#pop-form textarea[name=content]", "来电咨询企业开办营业执照办理进度")
        page.keyboard.press("Alt+S")
    page.wait_for_selector("#pop-ticket", timeout=10000)
    number = page.inner_text("#pop-ticket")
    assert "置信度" in page.inner_text("#pop-suggest")

    # correct the urgency during the call: refused without a reason, then saved with one
    assert page.input_value("#edit-form select[name=urgency]") == "general"
    page.select_option("#edit-form select[name=urgency]", "urgent")
    page.fill("#edit-form textarea[name=content]", "营业执照办理超期，企业下周开工，急需办结")
    page.keyboard.press("Alt+S")
    page.wait_for_selector("#edit-error >> text=更正理由不能为空", timeout=10000)
    assert "下周开工" in page.input_value("#edit-form textarea[name=content]")  # kept
    page.fill("#edit-form input[name=reason]", "来电人称下周开工，影响生产")
    page.keyboard.press("Alt+S")
    page.wait_for_selector("#pop-message >> text=工单已更新", timeout=10000)

    page.keyboard.press("Alt+N")
    page.keyboard.type("来电人希望短信告知办理结果")
    page.keyboard.press("Enter")
    page.wait_for_selector("#pop-notes >> text=来电人希望短信告知办理结果", timeout=10000)

    # blind transfer to another agent: the replaying PBX never recorded one and refuses it
    page.keyboard.press("Alt+T")
    page.fill("#transfer-form input[name=ext]", "8002")
    page.click("#btn-transfer")
    page.wait_for_selector("#transfer-error >> text=转接失败", timeout=10000)
    (xfer,) = pbx.sent("BlindTransfer")
    assert xfer["context"] == "dxe-transfer" and xfer["exten"] == "8002"
    assert xfer["channel"].startswith("Local/8001@agents-")

    due = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=1)
    page.keyboard.press("Alt+B")
    page.fill("#callback-form input[name=due]", due.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#callback-form input[name=note]", "告知营业执照办理结果")
    page.click("#btn-callback")
    page.wait_for_selector("#callback-set", timeout=10000)
    page.wait_for_selector("#callback-list >> text=告知营业执照办理结果", timeout=10000)
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "23-console-in-call")

    pbx.resume()  # the caller hangs up: wrap-up, paused with reason wrapup, countdown
    page.wait_for_selector("#pop-status >> text=通话已结束", timeout=20000)
    page.wait_for_selector("#wrapup >> text=秒后自动就绪", timeout=5000)
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "24-console-wrap-up")
    page.wait_for_selector(
        "#status >> text=话后处理时间到，已自动就绪", timeout=WRAPUP_SECONDS * 1000 + 8000
    )
    pauses = pbx.sent("QueuePause")
    wrap = [i for i, a in enumerate(pauses) if a.get("reason") == "wrapup"]
    assert wrap and any(a.get("paused") == "false" for a in pauses[wrap[-1] :])

    page.select_option("#wrapup-form select[name=disposition]", "callback")
    page.keyboard.press("Alt+W")  # focus
    page.keyboard.press("Alt+W")  # submit
    page.wait_for_selector("#wrapup-done >> text=话后小结：需回访", timeout=10000)
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "25-console-wrapped")

    ticket = page.context.new_page()
    ticket.goto(f"{server.url}/tickets/{number}")
    timeline = ticket.inner_text(".timeline")
    for what in ("更正类别/紧急程度", "来电人称下周开工，影响生产", "备注", "预约回访", "话后小结"):
        assert what in timeline, what
    ticket.close()
