"""The web workspace in a real headless Chromium against `callcenter run`: every role logs in and
lands on its home; a dispatcher dispatches a low-confidence ticket to two departments; each
handler replies; the ticket resolves (in summary mode) and the dispatcher texts the submitter the
summary from the ticket page. Screenshots of every main page go to tests/e2e/artifacts/."""

from __future__ import annotations

import re

import pytest
import yaml
from e2e_helpers import shot

from config.settings import DEFAULTS_DIR

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


@pytest.fixture
def summary_mode(server):
    """notices.yaml `resolution_reply: summary` dropped into the server's config folder (read on
    each use), removed afterwards so the other e2e tests see the default."""
    path = server.data_dir.parent / "config" / "notices.yaml"
    notices = yaml.safe_load((DEFAULTS_DIR / "notices.yaml").read_text("utf-8"))
    notices["resolution_reply"] = "summary"
    path.write_text(yaml.safe_dump(notices, allow_unicode=True), "utf-8")
    yield
    path.unlink()


def test_dispatch_to_two_departments_each_replies_and_it_resolves(page_for, server, summary_mode):
    desk = page_for("dispatcher")
    # walk-in at the window, vague enough that the classifier leaves it to a dispatcher
    desk.click("text=窗口受理")
    desk.fill("input[name=window_no]", "3号窗口")
    desk.fill("input[name=submitter_name]", "王女士")
    desk.fill("input[name=submitter_phone]", "13812341234")
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
    # summary mode: the dispatcher writes what the submitter is told (htmx swaps the card)
    card = desk.locator("#resolution-summary")
    card.locator("textarea[name=text]").fill("您反映的事项已由两部门分别答复。")
    card.locator("#summary-submit").click()
    desk.wait_for_selector("#resolution-summary .alert-ok")
    assert "办理结果摘要已告知诉求人" in desk.inner_text("#resolution-summary")
    assert desk.locator("#summary-form").count() == 0
    assert desk.url.endswith(f"/tickets/{number}")  # swapped in place, no reload
    shot(desk, "09b-ticket-summary-sent")

    leader = page_for("leader")
    leader.wait_for_selector("#chart-channel canvas")
    leader.wait_for_timeout(800)  # the charts' entry animation
    shot(leader, "10-leader")
    leader.click("nav.sidenav >> text=工单查询")
    leader.fill("input[name=q]", "想问一下")
    leader.click("button:has-text('查询')")
    assert number in leader.inner_text("table")
    shot(leader, "11-search")
