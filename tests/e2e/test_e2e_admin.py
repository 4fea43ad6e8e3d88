"""The administrator's pages in a real headless Chromium at 1366x768 against `callcenter run`:
the home with the calendar warning, creating a user (password shown once), editing a department
(secret never shown back), entering 2027's holidays, editing business hours. Screenshots of each
page go to tests/e2e/artifacts/ (30-admin-*)."""

from __future__ import annotations

import re

import pytest
from e2e_helpers import shot

pytestmark = pytest.mark.e2e


def test_admin_pages(page_for, server):
    page = page_for("admin")
    assert page.url == server.url + "/admin"
    assert "系统管理" in page.inner_text("h1")
    shot(page, "30-admin-home")

    # users: create a handler; the generated password is shown once
    page.click(".admin-tabs >> text=用户")
    page.wait_for_url(re.compile(r".*/admin/users$"))
    shot(page, "31-admin-users")
    page.click("#new-user summary")
    page.fill("#new-user input[name=username]", "chenqi")
    page.fill("#new-user input[name=display_name]", "陈七")
    page.select_option("#new-user select[name=role]", "handler")
    page.select_option("#new-user select[name=department_code]", "YJJ")
    shot(page, "32-admin-user-new")
    page.click("#new-user button[type=submit]")
    password = page.inner_text("#one-time-password").strip()
    assert len(password) >= 12
    shot(page, "33-admin-password-once")
    page.click("text=完成")
    page.wait_for_url(re.compile(r".*/admin/users/\d+$"))
    shot(page, "34-admin-user")

    # departments: the county list, then one department's form
    page.click(".admin-tabs >> text=部门")
    page.wait_for_url(re.compile(r".*/admin/departments$"))
    for name in ("应急管理局", "赤壁市消防救援大队", "蒲圻街道办事处"):
        assert name in page.inner_text("#departments")
    shot(page, "35-admin-departments")
    page.goto(server.url + "/admin/departments/RQGS")
    page.fill("input[name=head_phone]", "0715-5226000")
    page.fill("textarea[name=leaders]", "张副市长")
    page.fill("input[name=handoff_url]", "https://gas.example.cn/api/orders")
    page.fill("input[name=handoff_secret]", "a-long-secret-of-the-gas-system")
    page.fill("#keywords", "燃气泄漏\n漏气\n燃气费")
    page.click("button:has-text('保存')")
    page.wait_for_url(re.compile(r".*done=saved$"))
    assert "当前已设置密钥" in page.content()
    assert "a-long-secret-of-the-gas-system" not in page.content()
    shot(page, "36-admin-department")

    # calendar: enter 2027; the warning goes away
    page.click(".admin-tabs >> text=节假日日历")
    page.wait_for_url(re.compile(r".*/admin/calendar$"))
    page.fill("input[name=year]", "2027")
    page.fill(
        "textarea[name=holidays]",
        "2027-01-01~2027-01-03 元旦\n2027-02-06~2027-02-13 春节\n2027-04-05 清明节",
    )
    page.fill("textarea[name=workdays]", "2027-02-14 春节调休\n2027-02-20 春节调休")
    page.click("button:has-text('保存')")
    page.wait_for_url(re.compile(r".*done=calendar$"))
    assert "2027 年（已录入）" in page.inner_text("main")
    shot(page, "37-admin-calendar")

    # business hours with a lunch break and an own after-hours message
    page.click(".admin-tabs >> text=工作时间")
    page.wait_for_url(re.compile(r".*/admin/hours$"))
    page.locator("input[name=end]").nth(0).fill("12:00")
    page.locator("input[name=start]").nth(1).fill("14:30")
    page.locator("input[name=end]").nth(1).fill("17:30")
    page.fill(
        "textarea[name=message]",
        "您好，赤壁“店小二”专线现在是非工作时间，请留言，我们将于{callback}后回电。",
    )
    page.click("button:has-text('保存')")
    page.wait_for_url(re.compile(r".*done=hours$"))
    shot(page, "38-admin-hours")
    page.click(".admin-tabs >> text=概览")
    page.wait_for_url(re.compile(r".*/admin$"))
    shot(page, "39-admin-home-after")
