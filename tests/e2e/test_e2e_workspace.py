"""The web workspace in a real headless Chromium against `callcenter run`: every role logs in and
lands on its home; a dispatcher dispatches a low-confidence ticket to two departments; each
handler replies; the ticket resolves. Screenshots of every main page go to tests/e2e/artifacts/."""

from __future__ import annotations

import re

import pytest
from e2e_helpers import shot

pytestmark = pytest.mark.e2e

HOMES = {
    "dispatcher": ("/dispatch", "派单台"),
    "agent": ("/console", "坐席工作台"),
    "supervisor": ("/dispatch", "派单台"),
    "handler": ("/inbox", "部门待办"),
    "leader": ("/leader", "运行总览"),
    "admin": ("/admin", "系统管理"),
}


def test_login_page_and_bad_password(browser, server):
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    page = ctx.new_page()
    page.goto(server.url + "/")
    assert page.url.endswith("/login")
    shot(page, "01-login")
    page.fill("input[name=username]", "dispatcher")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    assert "用户名或密码错误" in page.inner_text(".alert-error")
    assert page.input_value("input[name=username]") == "dispatcher"
    ctx.close()


@pytest.mark.parametrize("username", list(HOMES))
def test_each_role_lands_on_its_home(page_for, server, username):
    page = page_for(username)
    path, heading = HOMES[username]
    assert page.url == server.url + path
    assert heading in page.inner_text("h1")
    assert page.is_visible("#logout")
    shot(page, f"02-home-{username}")
    page.click("#logout")
    page.wait_for_url(re.compile(r".*/login$"))


def test_dispatch_to_two_departments_each_replies_and_it_resolves(page_for, server):
    desk = page_for("dispatcher")
    # walk-in at the window, vague enough that the classifier leaves it to a dispatcher
    desk.click("text=窗口受理")
    desk.fill("input[name=window_no]", "3号窗口")
    desk.fill("input[name=submitter_name]", "王女士")
    desk.fill("textarea[name=content]", "嗯嗯那个就是想问一下")
    shot(desk, "03-window")
    desk.click("button:has-text('受理并生成告知书')")
    desk.wait_for_url(re.compile(r".*/tickets/[A-Z0-9-]+/notice\?new=1$"))
    number = re.search(r"/tickets/([A-Z0-9-]+)/notice", desk.url).group(1)
    assert "受理告知书" in desk.inner_text(".paper")
    shot(desk, "04-notice")

    desk.click("nav.sidenav >> text=派单台")
    row = desk.locator("tr", has_text=number)
    assert row.count() == 1
    shot(desk, "05-dispatch-desk")
    row.locator("text=派单").last.click()
    desk.wait_for_url(re.compile(rf".*/tickets/{number}"))
    for box in desk.locator("#dispatch input[name=departments]").all():
        box.uncheck()  # the classifier's suggestion comes pre-ticked
    for dept in ("市场监督管理局", "税务局"):
        desk.check(f"#dispatch label:has-text('{dept}') input")
    desk.fill("textarea[name=instructions]", "请两部门分别答复")
    shot(desk, "06-ticket-dispatch")
    desk.click("#dispatch-submit")
    assert "派单成功" in desk.inner_text(".alert-ok")
    assert desk.locator(".suborder").count() == 2

    for handler in ("handler", "handler_b"):
        inbox = page_for(handler)
        row = inbox.locator("tr", has_text=number)
        assert row.count() == 1
        shot(inbox, f"07-inbox-{handler}")
        row.locator("button:has-text('签收')").click()
        inbox.wait_for_load_state("networkidle")
        inbox.locator("tr", has_text=number).locator("text=办理").click()
        inbox.fill("textarea[name=text]", f"{handler} 已电话联系当事人并答复")
        shot(inbox, f"08-ticket-{handler}")
        inbox.click("button:has-text('提交答复')")
        assert "已回复" in inbox.inner_text(".alert-ok")

    desk.goto(f"{server.url}/tickets/{number}")
    assert "已办结" in desk.inner_text(".page-head")
    shot(desk, "09-ticket-resolved")

    leader = page_for("leader")
    leader.wait_for_selector("#chart-channel canvas")
    leader.wait_for_timeout(800)  # the charts' entry animation
    shot(leader, "10-leader")
    leader.click("nav.sidenav >> text=工单查询")
    leader.fill("input[name=q]", "想问一下")
    leader.click("button:has-text('查询')")
    assert number in leader.inner_text("table")
    shot(leader, "11-search")
