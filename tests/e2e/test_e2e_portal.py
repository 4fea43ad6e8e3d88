"""The public service portal in a real Chromium, at a phone's viewport (390x844) and a desktop's
(1366x768): submit a matter, see the 受理告知书, confirm it, follow it with the SMS code, and rate
it from the resolution SMS's link. Screenshots land in tests/e2e/artifacts/portal_*.png."""

from __future__ import annotations

import re

import pytest
from e2e_helpers import ARTIFACTS
from sqlmodel import col, select

from config.database import make_engine, session_scope
from config.settings import Settings
from ticketing import OutboxMessage, SubOrder, Ticket, accept, dispatch_to_departments, reply

VIEWPORTS = {"phone": (390, 844), "desktop": (1366, 768)}
PHONES = {"phone": "13812340001", "desktop": "13812340002"}


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"portal_{name}.png"), full_page=True)


def _settings(server) -> Settings:
    return Settings(
        data_dir=server.data_dir, redis_url=server.redis_url, redis_namespace=server.namespace
    )


def _sms(server, number: str, kind: str) -> str:
    engine = make_engine(_settings(server).resolved_database_url)
    try:
        with session_scope(engine, read_only=True) as s:
            t = s.exec(select(Ticket).where(Ticket.number == number)).one()
            row = s.exec(
                select(OutboxMessage)
                .where(OutboxMessage.ticket_id == t.id, OutboxMessage.kind == kind)
                .order_by(col(OutboxMessage.id).desc())
            ).first()
            assert row is not None, kind
            return row.body
    finally:
        engine.dispose()


def _resolve(server, number: str) -> None:
    """The department's side, through ticketing itself (the workspace e2e tests cover its pages)."""
    settings = _settings(server)
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(engine) as s:
            t = s.exec(select(Ticket).where(Ticket.number == number)).one()
            subs = list(s.exec(select(SubOrder).where(SubOrder.ticket_id == t.id)))
            if not subs:
                subs = dispatch_to_departments(s, settings, t, ["ZJJ"], actor="dispatcher")
            sid = subs[0].id
        with session_scope(engine) as s:
            accept(s, settings, sid, actor="handler")
        with session_scope(engine) as s:
            reply(
                s,
                settings,
                sid,
                actor="handler",
                text="经协调，贵公司的施工许可证已于今日核发，请携带营业执照到政务服务中心3号窗口领取。",
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_submit_confirm_follow_and_rate(browser, server, device):
    width, height = VIEWPORTS[device]
    ctx = browser.new_context(
        viewport={"width": width, "height": height},
        locale="zh-CN",
        is_mobile=device == "phone",
        has_touch=device == "phone",
    )
    try:
        page = ctx.new_page()
        page.goto(server.url + "/portal")
        assert page.locator("#go-submit").is_visible()
        _shot(page, f"{device}_1_home")

        page.click("#go-submit")
        page.wait_for_load_state("networkidle")
        # an error first: what was typed stays
        page.fill(
            "#content", "我公司在赤壁高新区新建厂房，施工许可证申请已超过二十个工作日仍无答复。"
        )
        # the knowledge suggestions are asked for as the content is typed (?q=); without the
        # endpoint (404) nothing shows and nothing breaks
        with page.expect_request(lambda r: "/portal/kb/suggest?q=" in r.url, timeout=10000):
            page.locator("#content").press("End")
        page.fill("#submitter_phone", PHONES[device])
        page.click("#submit-btn")
        page.wait_for_load_state("networkidle")
        assert "请选择事项类别" in page.inner_text("#form-errors")
        assert "施工许可证" in page.input_value("#content")
        _shot(page, f"{device}_2_form_error")

        page.check("input[name=category][value=enterprise]")
        page.fill("#submitter_name", "王先生")
        page.click("#submit-btn")
        page.wait_for_load_state("networkidle")
        assert "/portal/n/" in page.url
        assert "提交成功" in page.inner_text("#submitted")
        number = page.inner_text("#ticket-number").strip()
        assert re.fullmatch(r"[A-Z]+-\d{8}-\d{6}", number), number
        assert page.inner_text("#deadline").strip()
        _shot(page, f"{device}_3_notice")

        # the SMS's link is this same page; GET changed nothing, the button confirms
        sms = _sms(server, number, "acceptance")
        assert page.url.split("?")[0].split("/portal/n/")[1] in sms
        page.click("#confirm-btn")
        page.wait_for_load_state("networkidle")
        assert page.locator("#confirmed").is_visible()
        _shot(page, f"{device}_4_confirmed")

        # follow from another browser: number + phone + the SMS code
        other = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
        try:
            p2 = other.new_page()
            p2.goto(server.url + "/portal/track")
            p2.fill("#number", number)
            p2.fill("#phone", PHONES[device])
            p2.click("#send-code-btn")
            p2.wait_for_load_state("networkidle")
            assert p2.locator("#code").is_visible()
            code = re.search(r"验证码(\d{6})", _sms(server, number, "follow_code")).group(1)
            p2.fill("#code", code)
            _shot(p2, f"{device}_5_track_code")
            p2.click("#verify-btn")
            p2.wait_for_load_state("networkidle")
            assert f"/portal/track/{number}" in p2.url
            assert number in p2.inner_text("#progress")

            _resolve(server, number)
            p2.reload()
            assert "施工许可证已于今日核发" in p2.inner_text("#progress")
            assert "handler" not in p2.content()
            _shot(p2, f"{device}_6_track_resolved")
        finally:
            other.close()

        # the resolution SMS's rating link
        link = re.search(r"(/portal/rate/\S+)", _sms(server, number, "resolved")).group(1)
        page.goto(server.url + link)
        page.wait_for_load_state("networkidle")
        for field in ("process", "timeliness"):
            page.click(f"input[name={field}][value=satisfied] + span")
        page.click("input[name=result][value=basically_satisfied] + span")
        page.fill("#comment", "办理及时，态度很好。")
        _shot(page, f"{device}_7_rate")
        page.click("#rate-btn")
        page.wait_for_load_state("networkidle")
        assert page.locator("#rated-msg").is_visible()
        _shot(page, f"{device}_8_rated")
    finally:
        ctx.close()


def test_guides_page(browser, server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    try:
        page = ctx.new_page()
        page.goto(server.url + "/portal/guides")
        assert page.locator("#guides li").count() >= 3
        _shot(page, "phone_9_guides")
    finally:
        ctx.close()


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_the_footer_sits_at_the_bottom_of_a_short_page(browser, server, device):
    """On a short page (the tracking form) the footer ended mid-window with a grey band below it;
    the page is a column now and the footer's bottom is the window's."""
    width, height = VIEWPORTS[device]
    ctx = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    try:
        page = ctx.new_page()
        page.goto(server.url + "/portal/track")
        box = page.locator("footer.p-foot").bounding_box()
        assert box is not None
        doc_height = page.evaluate("document.documentElement.scrollHeight")
        assert abs(box["y"] + box["height"] - max(height, doc_height)) <= 1, (box, doc_height)
        main = page.locator("main.p-main").bounding_box()
        assert main is not None and main["width"] <= 1040 and main["x"] >= 0  # still centred
        _shot(page, f"{device}_10_short_page")
    finally:
        ctx.close()
