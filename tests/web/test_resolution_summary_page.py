"""Issue #18: in summary mode (notices.yaml `resolution_reply: summary`) the dispatcher writes the
summary the submitter is told from the ticket page: an htmx form with CSRF, for the roles of the
API's tickets.resolution_summary only, Chinese validation messages."""

from __future__ import annotations

import re

import pytest
import yaml
from console_helpers import DEPT_A
from sqlmodel import select
from test_flow import file_walk_in, status_of, sub_of
from test_loop_pages import _handle, _post
from web_helpers import Web

from config.database import session_scope
from config.settings import DEFAULTS_DIR, Settings
from ticketing import OutboxMessage

HTMX = {"HX-Request": "true"}


@pytest.fixture
def settings(settings: Settings, tmp_path) -> Settings:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    notices = yaml.safe_load((DEFAULTS_DIR / "notices.yaml").read_text("utf-8"))
    notices["resolution_reply"] = "summary"
    (cfg / "notices.yaml").write_text(yaml.safe_dump(notices, allow_unicode=True), "utf-8")
    return settings.model_copy(update={"config_dir": cfg})


def _resolved(web: Web) -> str:
    number = file_walk_in(web, submitter_phone="13812341234")
    page = f"/tickets/{number}"
    assert _post(web, f"{page}/dispatch", page, departments=[DEPT_A]).status_code == 303
    _handle(web, "handler", sub_of(web, number, DEPT_A), number)
    assert status_of(web, number) == "resolved"
    return number


def _resolved_sms(web: Web) -> list[str]:
    with session_scope(web.engine, read_only=True) as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.kind == "resolved")).all()
        return [m.body for m in rows]


def test_the_dispatcher_sends_the_summary_from_the_ticket_page(web: Web):
    number = _resolved(web)
    page = f"/tickets/{number}"
    web.login("handler")  # the department sees no summary form
    assert "summary-form" not in web.client.get(page).text
    web.login("dispatcher")
    html = web.client.get(page).text
    assert 'id="summary-form"' in html and f'hx-post="{page}/resolution-summary"' in html
    assert _resolved_sms(web) == []  # nothing is sent before the summary
    url = f"{page}/resolution-summary"
    token = web.csrf(page)
    r = web.client.post(url, data={"text": "   "}, headers={**HTMX, "X-CSRF-Token": token})
    assert r.status_code == 422 and "请填写告知提交人的办理结果摘要" in r.text
    assert r.text.lstrip().startswith('<div class="card" id="resolution-summary">')  # the card
    r = web.client.post(url, data={"text": "长" * 1001}, headers={**HTMX, "X-CSRF-Token": token})
    assert r.status_code == 422 and "摘要不能超过 1000 个字" in r.text
    assert "长" * 1001 in r.text  # what was typed is kept
    r = web.client.post(url, data={"text": "您反映的路灯问题已修复。"}, headers=HTMX)
    assert r.status_code == 403  # no CSRF token: refused
    r = web.client.post(
        url, data={"text": "您反映的路灯问题已修复。"}, headers={**HTMX, "X-CSRF-Token": token}
    )
    assert r.status_code == 200, r.text
    assert "办理结果摘要已告知诉求人" in r.text and "summary-form" not in r.text
    (sms,) = _resolved_sms(web)
    assert "您反映的路灯问题已修复" in sms and re.search(r"/portal/rate/\S+token=", sms)
    html = web.client.get(page).text
    assert "您反映的路灯问题已修复" in html and "summary-form" not in html


def test_a_plain_form_post_and_the_roles(web: Web):
    number = _resolved(web)
    page = f"/tickets/{number}"
    url = f"{page}/resolution-summary"
    web.login("agent")
    assert "summary-form" not in web.client.get(page).text
    r = web.client.post(url, data={"csrf_token": web.csrf(page), "text": "已办结"})
    assert r.status_code == 403
    web.login("dispatcher")
    r = _post(web, url, page, text="")
    assert r.status_code == 422 and "请填写告知提交人的办理结果摘要" in r.text
    assert "<html" in r.text  # the whole page, the card open with the error
    r = _post(web, url, page, text="已为您协调解决。")
    assert r.status_code == 303 and r.headers["location"].endswith("?done=summary")
    assert len(_resolved_sms(web)) == 1


def test_no_summary_before_the_ticket_is_resolved(web: Web):
    number = file_walk_in(web)
    page = f"/tickets/{number}"
    assert "summary-form" not in web.client.get(page).text
    r = _post(web, f"{page}/resolution-summary", page, text="已办结")
    assert r.status_code == 422 and "只有已办结的工单可以发送办理结果摘要" in r.text
