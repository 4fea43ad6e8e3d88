"""Defects found walking through the product as its users (window clerk, dispatcher, handlers,
citizen, supervisor): what the pages show must be Chinese and usable as they stand."""

from __future__ import annotations

import re

from console_helpers import DEPT_A, DEPT_B
from sqlmodel import select
from test_flow import file_walk_in, sub_of
from web_helpers import Web

from config.database import session_scope
from ticketing import OutboxMessage, Ticket

PHONE = "13871234567"


def _post(web: Web, path: str, page: str, **data):
    data["csrf_token"] = web.csrf(page)
    return web.client.post(path, data=data, follow_redirects=False)


def _reply(web: Web, handler: str, number: str, dept: str, text: str) -> None:
    web.login(handler)
    page, so = f"/tickets/{number}", sub_of(web, number, dept)
    assert _post(web, f"/suborders/{so}/accept", page).status_code == 303
    assert _post(web, f"/suborders/{so}/reply", page, text=text).status_code == 303


def _resolved_in_parallel(web: Web) -> str:
    number = file_walk_in(web, submitter_phone=PHONE)
    page = f"/tickets/{number}"
    r = _post(web, f"{page}/dispatch", page, departments=[DEPT_A, DEPT_B])
    assert r.status_code == 303, r.text
    _reply(web, "handler", number, DEPT_A, "已联系企业，许可证已于今日办结。")
    _reply(web, "handler_b", number, DEPT_B, "发票领用已开通。")
    return number


def test_the_ticket_page_names_every_record_and_notice_in_chinese(web: Web):
    number = _resolved_in_parallel(web)
    web.login("dispatcher")
    html = web.client.get(f"/tickets/{number}").text
    timeline = html.split("办理记录", 1)[1]
    assert "submitter_told" not in timeline and "短信告知诉求人" in timeline
    notices = html.split("<h3>告知书</h3>", 1)[1].split("</div>", 1)[0]
    assert "resolution" not in notices and "办结告知" in notices
    # a notice that only carries a rating link has nothing to confirm: no 未确认 on it
    lines = [ln for ln in notices.splitlines() if "办结告知" in ln]
    assert lines and all("未确认" not in ln for ln in lines)


def test_the_resolution_text_does_not_double_its_punctuation(web: Web):
    number = _resolved_in_parallel(web)
    with session_scope(web.engine, read_only=True) as s:
        tid = s.exec(select(Ticket.id).where(Ticket.number == number)).one()
        body = s.exec(
            select(OutboxMessage.body).where(
                OutboxMessage.ticket_id == tid, OutboxMessage.kind == "resolved"
            )
        ).one()
    assert "已于今日办结；" in body and "发票领用已开通。" in body
    assert not re.search(r"[。；，][。；，]", body), body


def test_adding_a_department_to_a_dispatched_ticket_as_the_form_stands(web: Web):
    """The form of a dispatched ticket ticked the suggested department again, though it already
    has its sub-order: sent as it stands, adding a second department was refused, by code."""
    number = file_walk_in(web)
    page = f"/tickets/{number}"
    assert _post(web, f"{page}/dispatch", page, departments=[DEPT_A]).status_code == 303
    with session_scope(web.engine) as s:  # the classifier's suggestion is the department sent to
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        t.suggested_department = DEPT_A
        s.add(t)
    html = web.client.get(page).text
    form = html.split(f'action="/tickets/{number}/dispatch"', 1)[1].split("</form>", 1)[0]
    box = re.search(rf'<input type="checkbox" name="departments" value="{DEPT_A}"[^>]*>', form)
    assert box and "disabled" in box.group(0) and "checked" not in box.group(0)
    assert "（已派）" in form
    r = _post(web, f"{page}/dispatch", page, departments=[DEPT_B])
    assert r.status_code == 303, r.text
    # asked again all the same, the refusal names the department as people know it
    r = _post(web, f"{page}/dispatch", page, departments=[DEPT_A])
    assert r.status_code in (409, 422)
    assert "市场监督管理局" in r.text and f"不能重复派单：{DEPT_A}" not in r.text


def test_the_wallboard_says_its_service_level_seconds(web: Web):
    web.login("supervisor")
    html = web.client.get("/wallboard").text
    assert "N 秒内接通" not in html and "15 秒内接通" in html


def test_the_redo_card_is_as_wide_as_the_rating_card():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "agent_console" / "web"
    rate = (root / "templates" / "portal" / "rate.html").read_text(encoding="utf-8")
    css = (root / "static" / "portal.css").read_text(encoding="utf-8")
    card = re.search(r'<section class="p-card"([^>]*)>\s*<details id="redo"', rate)
    assert card and 'id="redo-card"' in card.group(1)
    rule = next(ln for ln in css.splitlines() if "#rate-card" in ln and "max-width" in ln)
    assert "#redo-card" in rule


def test_a_browser_opening_an_unknown_address_gets_a_page_not_json(web: Web):
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    web.login("dispatcher")
    for path, word in (("/nope", "返回首页"), ("/portal/nope", "进度查询")):
        r = web.client.get(path, headers=html)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert "页面不存在" in r.text and word in r.text and '"not_found"' not in r.text
    nav = web.client.get("/nope", headers=html).text
    assert "派单台" in nav  # the signed-in user's own frame and nav
    web.client.cookies.clear()
    r = web.client.get("/nope", headers=html)
    assert r.status_code == 404 and "页面不存在" in r.text and 'href="/login"' in r.text
    # API clients keep the API's JSON answer
    assert web.client.get("/nope").json()["error"]["code"] == "not_found"
    r = web.client.get("/api/v1/nope", headers=html)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_stale_portal_link_gets_the_portal_page_not_the_staff_login(web: Web):
    """A citizen opening an article or a policy link that is gone: the portal's own frame and a way
    back into it, not the staff workspace's error page with its 登录 button."""
    web.client.cookies.clear()
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/portal/kb/999999", "/portal/p/no-such-token"):
        r = web.client.get(path, headers=html)
        assert r.status_code == 404, path
        assert 'id="portal-error"' in r.text and 'href="/portal/track"' in r.text, path
        assert 'href="/login"' not in r.text, path


def test_refusals_call_each_role_by_the_name_the_pages_use(web: Web):
    """The user list calls a handler 部门承办人; its refusals said 部门经办人."""
    web.login("admin")
    r = _post(web, "/admin/users", "/admin/users", username="zhangsan", role="handler")
    assert r.status_code == 422
    assert "部门承办人必须指定所属部门" in r.text and "经办人" not in r.text
    from agent_console.errors import VALUE_LABELS
    from agent_console.web.core import ROLE_LABELS

    assert {k: VALUE_LABELS[k] for k in ROLE_LABELS} == ROLE_LABELS


def test_every_page_names_a_vendored_icon(web: Web):
    """Without one the browser asks for /favicon.ico on every first visit: a 404 in the log."""
    web.login("dispatcher")
    for path in ("/dispatch", "/portal", "/login"):
        html = web.client.get(path).text
        assert '<link rel="icon" href="/static/favicon.svg"' in html, path
    r = web.client.get("/static/favicon.svg")
    assert r.status_code == 200 and r.text.lstrip().startswith("<svg")


def test_the_history_names_machine_actors_in_chinese(web: Web):
    """A portal submission's history said “受理 public … 生成受理告知书 system”."""
    from test_portal import _submitted

    web.client.cookies.clear()
    _, number, _ = _submitted(web)
    web.login("dispatcher")
    html = web.client.get(f"/tickets/{number}").text
    whos = re.findall(r'<span class="tl-who muted">([^<]*)</span>', html)
    assert whos and "public" not in whos and "system" not in whos, whos
    assert "群众（网上提交）" in whos and "系统" in whos


def test_portal_buttons_use_the_portal_styles():
    """portal.css has no .btn (the workspace's): buttons so classed showed as bare browser ones."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "agent_console" / "web" / "templates" / "portal"
    for f in sorted(root.glob("*.html")):
        for cls in re.findall(r'class="([^"]*)"', f.read_text(encoding="utf-8")):
            assert "btn" not in cls.split(), (f.name, cls)
    article = (root / "kb_article.html").read_text(encoding="utf-8")
    assert 'href="/portal/submit">仍需提交诉求' in article
