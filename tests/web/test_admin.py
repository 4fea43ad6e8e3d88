"""The administrator's pages (issue #18): users, departments, holiday calendar, business hours.
Only the admin opens them; every form needs this session's CSRF token; the last active admin can
be neither deactivated nor demoted; secrets are never shown back."""

from __future__ import annotations

import re
from datetime import date

import pytest
from fastapi.routing import APIRoute
from sqlmodel import select
from web_helpers import PASSWORD, Web

from agent_console.user_admin import UserChange, update_user
from config.database import session_scope
from ticketing import Conflict, Department, User
from ticketing.admin_settings import forget_cached_settings
from ticketing.handoff import stored_secret
from ticketing.routing import match_rule

NON_ADMINS = ("dispatcher", "agent", "supervisor", "handler", "leader")
ONE_TIME_RE = re.compile(r'id="one-time-password">([^<]+)<')


@pytest.fixture(autouse=True)
def _fresh_cache():
    forget_cached_settings()
    yield
    forget_cached_settings()


def admin_routes(web: Web) -> list[tuple[str, str]]:
    """(method, path) of every page and action behind the "web.admin" row."""
    from agent_console.web import admin, admin_departments, admin_users

    out = []
    routes = [*admin.router.routes, *admin_users.router.routes, *admin_departments.router.routes]
    for r in routes:
        assert isinstance(r, APIRoute)
        rows = {getattr(d.call, "page_row", None) for d in r.dependant.dependencies}
        if "web.admin" in rows:
            path = r.path.replace("{uid}", str(web.user_ids["admin"])).replace("{code}", "SWJ")
            out.extend((m, path) for m in r.methods)
    return sorted(out)


def test_every_admin_page_and_action_is_refused_to_other_roles(web: Web):
    routes = admin_routes(web)
    assert len(routes) >= 12  # the home, users (5), departments (4), calendar (2), hours (2)
    for role in NON_ADMINS:
        web.login(role)
        csrf = web.csrf("/search")
        for method, path in routes:
            if method == "GET":
                r = web.client.get(path)
            else:
                r = web.client.post(path, data={"csrf_token": csrf, "role": "admin", "active": "0"})
            assert r.status_code == 403, (role, method, path, r.status_code)
    web.client.cookies.clear()
    for method, path in routes:
        r = web.client.request(method, path, follow_redirects=False)
        assert r.status_code in (303, 403), (method, path)
    with session_scope(web.engine, read_only=True) as s:  # nothing changed
        assert s.get(User, web.user_ids["admin"]).active
        assert s.exec(select(Department).where(Department.code == "SWJ")).one().edited_at is None


def test_admin_home_has_the_admin_nav_and_warns_about_the_calendar(web: Web, monkeypatch):
    import agent_console.web.admin as admin_pages

    web.login("admin")
    monkeypatch.setattr(admin_pages, "today_local", lambda request: date(2026, 12, 6))
    r = web.client.get("/admin")
    assert r.status_code == 200
    assert 'href="/admin"' in r.text and "系统管理" in r.text
    assert 'id="calendar-warning"' in r.text and "2027年" in r.text
    monkeypatch.setattr(admin_pages, "today_local", lambda request: date(2026, 6, 1))
    assert 'id="calendar-warning"' not in web.client.get("/admin").text


def test_admin_home_counts_departments_and_lists_those_without_a_head_phone_in_order(web: Web):
    """The department figures and the 待完善 list come from the one all_departments (configured
    order): an inactive department is counted in the total only, a phone takes one off the list."""
    with session_scope(web.engine) as s:
        depts = s.exec(select(Department).order_by(Department.id)).all()
        depts[0].active = False
        depts[1].head_phone = "0715-5220000"
        s.add_all(depts[:2])
    web.login("admin")
    html = web.client.get("/admin").text
    assert f"在用部门（共 {len(depts)}）" in html
    assert f'<div class="stat-num">{len(depts) - 1}</div><div class="stat-label">在用部门' in html
    listed = re.findall(r'<a class="chip" href="/admin/departments/([^"]+)">', html)
    wanted = [d.code for d in depts[2:] if d.active and d.head_phone is None][:24]
    assert listed == wanted and depts[0].code not in listed and depts[1].code not in listed


def test_forms_without_the_csrf_token_are_refused(web: Web):
    web.login("admin")
    uid = web.user_ids["dispatcher"]
    for path, data in [
        ("/admin/users", {"username": "x1", "role": "agent"}),
        (f"/admin/users/{uid}/active", {"active": "0"}),
        (f"/admin/users/{uid}/password", {}),
        ("/admin/departments/SWJ", {"name": "改名"}),
        ("/admin/calendar", {"year": "2027", "holidays": "2027-01-01 元旦"}),
        ("/admin/hours", {"start": "08:00", "end": "09:00"}),
    ]:
        for token in (None, "forged"):
            body = dict(data) if token is None else {**data, "csrf_token": token}
            r = web.client.post(path, data=body)
            assert r.status_code == 403 and "CSRF" in r.text, path
    with session_scope(web.engine, read_only=True) as s:
        assert s.get(User, uid).active
        assert s.exec(select(User).where(User.username == "x1")).first() is None


def test_create_user_with_a_generated_password_shown_once(web: Web):
    web.login("admin")
    csrf = web.csrf("/admin/users")
    r = web.client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "zhangsan", "display_name": "张三",
              "role": "handler", "department_code": "YJJ", "password": ""},
    )  # fmt: skip
    assert r.status_code == 200 and "只显示这一次" in r.text
    password = ONE_TIME_RE.search(r.text).group(1)
    assert r.headers["cache-control"] == "no-store"
    listing = web.client.get("/admin/users").text
    assert "zhangsan" in listing and "应急管理局" in listing and password not in listing
    assert web.login("zhangsan", password).status_code == 303
    assert web.client.get("/inbox").status_code == 200


def test_create_user_refusals_keep_what_was_typed(web: Web):
    web.login("admin")
    csrf = web.csrf("/admin/users")
    base = {"csrf_token": csrf, "display_name": "李四", "role": "handler", "password": ""}
    r = web.client.post("/admin/users", data={**base, "username": "lisi", "department_code": ""})
    assert r.status_code == 422 and "必须指定所属部门" in r.text and 'value="lisi"' in r.text
    r = web.client.post("/admin/users", data={**base, "username": "李四", "department_code": ""})
    assert r.status_code == 422 and "用户名只能使用" in r.text
    r = web.client.post(
        "/admin/users", data={**base, "username": "Dispatcher", "department_code": "SWJ"}
    )
    assert r.status_code == 422 and "用户名已存在" in r.text
    r = web.client.post(
        "/admin/users",
        data={**base, "username": "wangwu", "role": "agent", "password": "12345678"},
    )
    assert r.status_code == 422 and "密码" in r.text and "12345678" not in r.text


def test_change_role_and_department_reset_password_deactivate(web: Web):
    uid = web.user_ids["agent"]
    web.login("agent")
    agent_cookies = dict(web.client.cookies)
    web.login("admin")
    csrf = web.csrf(f"/admin/users/{uid}")
    r = web.client.post(
        f"/admin/users/{uid}",
        data={"csrf_token": csrf, "role": "handler", "department_code": "GDGS",
              "display_name": "赵六"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].endswith("done=saved")
    page = web.client.get(r.headers["location"]).text
    assert "已保存" in page and 'value="GDGS" selected' in page
    with session_scope(web.engine, read_only=True) as s:
        u = s.get(User, uid)
        assert (u.role, u.department_code, u.display_name) == ("handler", "GDGS", "赵六")
    # the agent's old session ended with the change
    r = web.client.get("/inbox", cookies=agent_cookies, follow_redirects=False)
    assert r.status_code == 303 and "/login" in r.headers["location"]

    r = web.client.post(f"/admin/users/{uid}/password", data={"csrf_token": csrf})
    assert r.status_code == 200
    new_password = ONE_TIME_RE.search(r.text).group(1)
    assert web.login("agent", PASSWORD).status_code == 401
    assert web.login("agent", new_password).status_code == 303

    web.login("admin")
    csrf = web.csrf(f"/admin/users/{uid}")
    r = web.client.post(f"/admin/users/{uid}/active", data={"csrf_token": csrf, "active": "0"})
    assert r.status_code == 200 and "用户已停用" in r.text
    assert web.login("agent", new_password).status_code in (401, 403)


def test_the_last_admin_can_be_neither_deactivated_nor_demoted(web: Web):
    uid = web.user_ids["admin"]
    web.login("admin")
    csrf = web.csrf(f"/admin/users/{uid}")
    r = web.client.post(f"/admin/users/{uid}/active", data={"csrf_token": csrf, "active": "0"})
    assert r.status_code == 409 and "最后一个有效的管理员" in r.text
    r = web.client.post(
        f"/admin/users/{uid}",
        data={"csrf_token": csrf, "role": "leader", "department_code": "", "display_name": ""},
    )
    assert r.status_code == 422 and "最后一个有效的管理员" in r.text
    with session_scope(web.engine, read_only=True) as s:
        u = s.get(User, uid)
        assert u.active and u.role == "admin"
    # with a second admin the first may step down; then the second is the last one
    other = web.user_ids["supervisor"]
    r = web.client.post(
        f"/admin/users/{other}",
        data={"csrf_token": csrf, "role": "admin", "department_code": "", "display_name": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = web.client.post(
        f"/admin/users/{uid}/active",
        data={"csrf_token": csrf, "active": "0"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with session_scope(web.engine) as s, pytest.raises(Conflict) as e:
        update_user(s, other, UserChange(active=False))
    assert e.value.code == "last_admin"


def test_the_last_admin_rule_is_the_service_s(web: Web):
    """The rule lives in user_admin (the API and the pages both call it)."""
    uid = web.user_ids["admin"]
    for change in (UserChange(active=False), UserChange(role="dispatcher")):
        with session_scope(web.engine) as s, pytest.raises(Conflict):
            update_user(s, uid, change)
    with session_scope(web.engine) as s:  # a harmless change passes
        update_user(s, uid, UserChange(display_name="系统管理员"))


def test_department_edit_secret_is_write_only_and_keywords_route(web: Web):
    web.login("admin")
    csrf = web.csrf("/admin/departments")
    listing = web.client.get("/admin/departments").text
    for name in (
        "应急管理局",
        "消防救援大队",
        "中国电信赤壁分公司",
        "蒲圻街道办事处",
        "余家桥乡人民政府",
    ):
        assert name in listing
    secret = "s3cret-for-the-gas-company-system"
    form = {
        "csrf_token": csrf, "name": "赤壁市燃气有限公司", "head_name": "总经理",
        "head_phone": "0715-5226000", "leaders": "张副市长\n", "handoff_url":
        "https://gas.example.cn/api/orders", "handoff_secret": secret, "active": "1",
        "keywords": "燃气泄漏、漏气\n燃气费",
    }  # fmt: skip
    r = web.client.post("/admin/departments/RQGS", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = web.client.get("/admin/departments/RQGS").text
    assert "已保存" in page and "当前已设置密钥" in page and secret not in page
    assert "赤壁市燃气有限公司" in page and "+867155226000" in page
    assert secret not in web.client.get("/admin/departments").text
    with session_scope(web.engine, read_only=True) as s:
        d = s.exec(select(Department).where(Department.code == "RQGS")).one()
        assert d.leaders == ["张副市长"]  # the secret is stored encrypted (ticketing.sealed)
        assert d.handoff_secret and secret not in d.handoff_secret
        assert stored_secret(s, web.settings, "RQGS") == secret
    rule = match_rule(web.settings, "小区燃气管道漏气了")
    assert rule is not None and rule.departments == ("RQGS",)
    # an empty secret field keeps the secret; "清除" removes it
    r = web.client.post("/admin/departments/RQGS", data={**form, "handoff_secret": ""})
    with session_scope(web.engine, read_only=True) as s:
        assert s.exec(select(Department.handoff_secret).where(Department.code == "RQGS")).one()
    web.client.post(
        "/admin/departments/RQGS", data={**form, "handoff_secret": "", "clear_secret": "1"}
    )
    with session_scope(web.engine, read_only=True) as s:
        assert (
            s.exec(select(Department.handoff_secret).where(Department.code == "RQGS")).one() is None
        )


def test_department_refusals_keep_the_form(web: Web):
    web.login("admin")
    csrf = web.csrf("/admin/departments")
    r = web.client.post(
        "/admin/departments/SWJ",
        data={"csrf_token": csrf, "name": "税务局", "head_phone": "123", "active": "1",
              "keywords": "退税"},
    )  # fmt: skip
    assert r.status_code == 422 and "负责人电话" in r.text and 'value="123"' in r.text
    r = web.client.post("/admin/departments", data={"csrf_token": csrf, "code": "swj", "name": "x"})
    assert r.status_code == 422 and "部门代码已存在" in r.text
    r = web.client.post(
        "/admin/departments", data={"csrf_token": csrf, "code": "农业", "name": "x"}
    )
    assert r.status_code == 422 and "部门代码须为" in r.text
    r = web.client.post(
        "/admin/departments",
        data={"csrf_token": csrf, "code": "NYJ", "name": "农业农村局"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/departments/NYJ?done=created"
    assert web.client.get("/admin/departments/NOPE").status_code == 404


@pytest.mark.parametrize("year", ["²⁰²⁷", "２０２７", "2027 "])
def test_calendar_year_in_other_digits_is_a_clear_error_not_a_500(web: Web, year: str):
    """ "²".isdigit() is True and int("²") raises: the page answered 500 to it (a form probe)."""
    web.login("admin")
    assert web.client.get("/admin/calendar", params={"year": year}).status_code == 200
    csrf = web.csrf("/admin/calendar")
    r = web.client.post(
        "/admin/calendar", data={"csrf_token": csrf, "year": year, "holidays": "", "workdays": ""}
    )
    if year.strip() == "2027":  # surrounding spaces are stripped: a year, read as one
        assert r.status_code == 422 and "请至少录入2027年" in r.text
    else:
        assert r.status_code == 422 and "请填写年份" in r.text


def test_calendar_page_enters_2027_and_a_deadline_moves(web: Web):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from ticketing.sla import add_duration

    sh = ZoneInfo("Asia/Shanghai")
    start = datetime(2026, 12, 31, 10, 0, tzinfo=sh)
    assert add_duration(web.settings, start, 1, "working_days").day == 1  # 元旦 counted
    web.login("admin")
    page = web.client.get("/admin/calendar").text
    assert "2004–2026" in page
    csrf = web.csrf("/admin/calendar")
    r = web.client.post(
        "/admin/calendar",
        data={"csrf_token": csrf, "year": "2027", "holidays": "2027-13-01 元旦", "workdays": ""},
    )
    assert r.status_code == 422 and "放假日期第1行无法识别" in r.text and "2027-13-01" in r.text
    r = web.client.post(
        "/admin/calendar",
        data={"csrf_token": csrf, "year": "2027",
              "holidays": "2027-01-01~2027-01-03 元旦\n2027-02-06~2027-02-13 春节",
              "workdays": "2027-02-14 春节调休"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303
    page = web.client.get("/admin/calendar?year=2027").text
    assert "2027-01-01~2027-01-03 元旦" in page and "放假 11 天" in page
    assert add_duration(web.settings, start, 1, "working_days").day == 4  # Monday Jan 4


def test_hours_page_edits_periods_and_message(web: Web):
    from ticketing.hours import load_business_hours

    web.login("admin")
    page = web.client.get("/admin/hours").text
    assert 'value="08:30"' in page and "现在是非工作时间" in page  # ivr.yaml's default
    csrf = web.csrf("/admin/hours")
    bad = {"csrf_token": csrf, "start": ["08:30", "11:00"], "end": ["12:00", "17:30"],
           "message": "下班了"}  # fmt: skip
    r = web.client.post("/admin/hours", data=bad)
    assert r.status_code == 422 and "不能相互重叠" in r.text and "下班了" in r.text
    good = {"csrf_token": csrf, "start": ["08:30", "14:30", ""], "end": ["12:00", "17:30", ""],
            "message": "您好，已下班，我们将于{callback}回电。"}  # fmt: skip
    r = web.client.post("/admin/hours", data=good, follow_redirects=False)
    assert r.status_code == 303
    hours = load_business_hours(web.settings)
    assert [(a.strftime("%H:%M"), b.strftime("%H:%M")) for a, b in hours.periods] == [
        ("08:30", "12:00"),
        ("14:30", "17:30"),
    ]
    assert hours.after_hours_message == "您好，已下班，我们将于{callback}回电。"
    assert "已保存" in web.client.get("/admin/hours?done=hours").text
