"""The workspace shell: log in per role to its own home, log out, CSRF, role checks from the one
role table, expired sessions, security headers."""

from __future__ import annotations

import pytest
from web_helpers import PASSWORD, Web

from agent_console.roles import ROLE_MATRIX
from agent_console.security import COOKIE_NAME
from agent_console.web.core import HOMES, NAV

ROLES = ("admin", "dispatcher", "agent", "supervisor", "handler", "leader")


def test_root_redirects_to_login_without_a_session(web: Web):
    r = web.client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = web.client.get("/dispatch", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fdispatch")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_lands_on_its_home_and_sees_only_its_pages(web: Web, role: str):
    r = web.login(role)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == HOMES[role]
    cookie = r.headers.get_list("set-cookie")
    assert any(
        c.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in c and "SameSite=lax" in c for c in cookie
    )
    home = web.client.get(HOMES[role])
    assert home.status_code == 200, home.text
    assert "退出" in home.text
    for row, url, _ in NAV:
        shown = f'href="{url}"' in home.text
        assert shown == (role in ROLE_MATRIX[row]), (role, url)
        status = web.client.get(url).status_code
        assert (status == 200) == (role in ROLE_MATRIX[row]), (role, url, status)
        if role not in ROLE_MATRIX[row]:
            assert status == 403
    assert web.client.get("/", follow_redirects=False).headers["location"] == HOMES[role]


def test_the_header_names_a_handlers_department_not_its_code(web: Web):
    from sqlmodel import select

    from config.database import session_scope
    from ticketing import Department

    web.login("handler")
    with session_scope(web.engine, read_only=True) as s:
        dept = s.exec(select(Department).where(Department.code == "SCJG")).one()
    tag = web.client.get("/inbox").text.split('class="role-tag">')[1].split("</span>")[0]
    assert tag == f"部门承办人 · {dept.name}" and "SCJG" not in tag
    web.login("dispatcher")
    tag = web.client.get("/dispatch").text.split('class="role-tag">')[1].split("</span>")[0]
    assert "·" not in tag


def test_bad_password_keeps_the_username_and_says_why_in_chinese(web: Web):
    r = web.login("dispatcher", "wrong-password")
    assert r.status_code == 401
    assert "用户名或密码错误" in r.text
    assert 'value="dispatcher"' in r.text


def test_login_form_without_its_token_is_refused(web: Web):
    web.client.cookies.clear()
    r = web.client.post(
        "/login",
        data={"username": "admin", "password": "x", "login_token": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert COOKIE_NAME not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize("bad", ["１２３", "\u200b\u200b", "令牌"])
def test_non_ascii_login_and_csrf_tokens_are_refused_not_a_500(web: Web, bad: str):
    """hmac.compare_digest raised TypeError on a non-ASCII str: the login form and every CSRF
    check answered 500 to a token like "１２３" (found by a garbage probe of the form routes)."""
    web.client.cookies.clear()
    web.client.get("/login")
    r = web.client.post(
        "/login",
        data={"username": "dispatcher", "password": PASSWORD, "login_token": bad},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "页面已过期" in r.text
    web.login("dispatcher")
    r = web.client.post("/logout", data={"csrf_token": bad}, follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert web.client.get("/dispatch").status_code == 200  # still logged in


def test_login_next_is_local_only(web: Web):
    web.client.cookies.clear()
    page = web.client.get("/login?next=//evil.example/x")
    assert "evil" not in page.text


def test_post_without_csrf_token_is_refused(web: Web):
    web.login("dispatcher")
    r = web.client.post("/logout", data={}, follow_redirects=False)
    assert r.status_code == 403
    assert "CSRF" in r.text
    assert web.client.get("/dispatch").status_code == 200  # still logged in


def test_logout_ends_the_session_everywhere(web: Web):
    web.login("dispatcher")
    old = web.client.cookies.get(COOKIE_NAME)
    r = web.client.post(
        "/logout", data={"csrf_token": web.csrf("/dispatch")}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/login"
    web.client.cookies.set(COOKIE_NAME, old)  # the old token is revoked, not only forgotten
    r = web.client.get("/dispatch", follow_redirects=False)
    assert r.status_code == 303 and "expired=1" in r.headers["location"]
    assert web.client.get("/api/v1/auth/me").status_code == 401


def test_htmx_request_with_no_session_gets_hx_redirect(web: Web):
    web.client.cookies.clear()
    r = web.client.get("/search", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 204 and r.headers["HX-Redirect"].startswith("/login")


def test_pages_send_security_headers_and_assets_are_vendored(web: Web):
    web.login("leader")
    r = web.client.get("/leader")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http" not in r.text.split("<body")[0]  # no CDN in the head
    for asset in ("/static/vendor/htmx.min.js", "/static/vendor/echarts.min.js", "/static/app.css"):
        assert web.client.get(asset).status_code == 200, asset


def test_every_page_route_checks_a_row_of_the_one_role_table():
    """Each workspace route (but log-in, log-out's own check and `/`) is guarded by page_user with
    a web.* row of ROLE_MATRIX: no page without roles, no second table."""
    from fastapi.routing import APIRoute

    from agent_console.web import ROUTERS
    from agent_console.web.portal_kb import OPEN_ROUTES
    from agent_console.web.portal_policy import OPEN_ROUTES as POLICY_OPEN_ROUTES

    open_routes = {"web.login", "web.login_submit", "web.home"} | OPEN_ROUTES | POLICY_OPEN_ROUTES
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            rows = [
                d.call.page_row for d in route.dependant.dependencies if hasattr(d.call, "page_row")
            ]
            if route.name in open_routes:
                assert rows == [], route.path
            else:
                assert len(rows) == 1 and rows[0] in ROLE_MATRIX, (route.path, rows)
                assert rows[0].startswith("web.")


def test_an_expired_session_goes_back_to_login_saying_so(web: Web):
    from agent_console.security import issue_token

    token, _ = issue_token(
        b"test-secret-key-not-for-production", web.user_ids["dispatcher"], 1, ttl_seconds=-1
    )
    web.client.cookies.clear()
    web.client.cookies.set(COOKIE_NAME, token)
    r = web.client.get("/dispatch", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("&expired=1")
    assert "登录已过期" in web.client.get(r.headers["location"]).text
