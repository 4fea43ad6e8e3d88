"""Pages of the proactive policy push (issue #12): profile edit and import, the push panel and
推送, ticket ↔ policy links, the pushed link's public page (open logged) and the opt-out; the
roles of every new route."""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

import pytest
from sqlmodel import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ticketing"))
from policy_helpers import enterprise, policy, uscc
from web_helpers import Web

from config.database import session_scope
from ticketing.intake import submit
from ticketing.knowledge.models import (
    PolicyPush,
    PolicyPushOpen,
    PolicyPushRun,
    TicketPolicy,
)
from ticketing.models import Enterprise
from ticketing.policy_push import PUSH_PATH, run_push
from ticketing.schemas import TicketIn

ROLES = ("admin", "dispatcher", "agent", "supervisor", "handler", "leader")
PROFILE_EDITORS = {"admin", "dispatcher", "supervisor"}


def _count(web: Web, model) -> int:
    with session_scope(web.engine, read_only=True) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def _policy(web: Web, **kw) -> int:
    with session_scope(web.engine) as s:
        kw.setdefault("department_code", "SCJG")
        return policy(s, web.settings, **kw).id


def _ticket(web: Web) -> str:
    with session_scope(web.engine) as s:
        t = submit(
            s,
            TicketIn(
                channel="web", content="请问稳岗补贴政策怎么申请？", submitter_phone="13800001111"
            ),
            settings=web.settings,
            actor="agent",
        )
        return t.number


def _post(web: Web, path: str, data: dict, **kw):
    return web.client.post(
        path, data={**data, "csrf_token": web.csrf("/search")}, follow_redirects=False, **kw
    )


@pytest.mark.parametrize("role", ROLES)
def test_roles_of_the_new_pages(web: Web, role: str):
    pid = _policy(web)
    number = _ticket(web)
    web.login(role)
    editor = role in PROFILE_EDITORS
    assert web.client.get("/enterprises/import").status_code == (200 if editor else 403)
    r = _post(web, "/enterprises/profile", {"uscc": uscc(1), "name": "甲", "region": "车埠镇"})
    assert r.status_code == (303 if editor else 403)
    csv_body = "统一社会信用代码,企业名称\n" + uscc(2) + ",乙\n"
    r = _post(web, "/enterprises/import", {}, files={"file": ("a.csv", csv_body.encode())})
    assert r.status_code == (200 if editor else 403)
    # every staff role sees a policy's push panel; its editors (admin, the owning department's
    # handler) push it
    assert web.client.get(f"/kb/{pid}/push").status_code == 200
    r = _post(web, f"/kb/{pid}/push", {})
    assert r.status_code == (303 if role in ("admin", "handler") else 403), role
    r = _post(web, f"/tickets/{number}/policies", {"article_id": str(pid)})
    assert r.status_code == (303 if role in ("admin", "dispatcher", "agent", "supervisor") else 403)


def test_new_pages_need_a_login_and_a_csrf_token(web: Web):
    pid = _policy(web)
    web.client.cookies.clear()
    for path in ("/enterprises/import", f"/kb/{pid}/push"):
        r = web.client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    web.login("admin")
    r = web.client.post("/enterprises/profile", data={"uscc": uscc(1)}, follow_redirects=False)
    assert r.status_code == 403
    assert _count(web, Enterprise) == 0


def test_handler_of_another_department_cannot_push(web: Web):
    pid = _policy(web, department_code="SWJ")
    web.login("handler")  # SCJG
    r = _post(web, f"/kb/{pid}/push", {})
    assert r.status_code == 403 and "只有政策所属部门" in r.text
    assert "推送给适用企业" not in web.client.get(f"/kb/{pid}/push").text
    assert _count(web, PolicyPushRun) == 0


def test_profile_page_edit_and_errors(web: Web):
    fits = _policy(web, industries=["F52"], size_bands=["小型"])
    _policy(web, industries=["C"])
    web.login("dispatcher")
    page = web.client.get(f"/enterprises?uscc={uscc(5)}")
    assert page.status_code == 404 and "新建企业档案" in page.text
    bad = _post(
        web,
        "/enterprises/profile",
        {"uscc": uscc(5), "industry_code": "Z99", "employees": "很多", "push_mobile": "12345"},
    )
    assert bad.status_code == 422
    assert "行业代码" in bad.text and "从业人员应为整数" in bad.text
    assert "推送手机号应为大陆手机号码" in bad.text
    assert _count(web, Enterprise) == 0
    form = {
        "uscc": uscc(5),
        "name": "赤壁新店超市",
        "industry_code": "5211",
        "employees": "10",
        "revenue": "100",
        "region": "新店镇",
        "tags": "零售、连锁",
        "push_mobile": "13900005555",
    }
    r = _post(web, "/enterprises/profile", form)
    assert r.status_code == 303 and r.headers["location"] == f"/enterprises/{uscc(5)}?saved=1"
    page = web.client.get(r.headers["location"]).text
    assert "小型" in page and "F5211" in page and "新店镇" in page and "零售" in page
    assert re.search(rf'href="/kb/{fits}"', page)  # the fitting policy listed
    assert "+86139****5555" in page  # the push mobile masked
    # one below the retail 小型 limit: 微型
    r = _post(web, "/enterprises/profile", {**form, "employees": "9"})
    assert "微型" in web.client.get(r.headers["location"]).text
    assert _count(web, PolicyPushRun) == 2  # new, then a changed band


def test_import_page_reports_bad_rows(web: Web):
    web.login("supervisor")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["统一社会信用代码", "企业名称", "行业代码", "从业人员", "所在镇街"])
    w.writerow([uscc(1), "甲", "C1311", "30", "车埠镇"])
    w.writerow([uscc(2), "乙", "C1", "30", "外地"])
    r = _post(web, "/enterprises/import", {}, files={"file": ("企业.csv", buf.getvalue().encode())})
    assert r.status_code == 422
    assert "未导入任何数据" in r.text and "第 3 行" in r.text and "所在镇街" in r.text
    assert _count(web, Enterprise) == 0
    r = _post(web, "/enterprises/import", {}, files={"file": ("x.pdf", b"%PDF")})
    assert r.status_code == 422 and "只能导入 .csv 或 .xlsx 文件" in r.text


def test_ticket_links_to_a_policy(web: Web):
    pid = _policy(web)
    number = _ticket(web)
    web.login("agent")
    r = _post(web, f"/tickets/{number}/policies", {"article_id": "999999"})
    assert r.headers["location"].endswith("policy_error=1")
    r = _post(web, f"/tickets/{number}/policies", {"article_id": str(pid)})
    page = web.client.get(r.headers["location"]).text
    assert f'href="/kb/{pid}"' in page and "测试政策" in page
    assert _count(web, TicketPolicy) == 1
    web.login("admin")
    assert number in web.client.get(f"/kb/{pid}/push").text


def test_push_link_opens_and_opts_out(web: Web):
    with session_scope(web.engine) as s:
        ent = enterprise(s, web.settings, 1)
        pid = policy(s, web.settings).id
        eid = ent.id
    web.login("admin")
    assert _post(web, f"/kb/{pid}/push", {}).status_code == 303
    with session_scope(web.engine, read_only=True) as s:
        rid = s.exec(select(PolicyPushRun.id)).one()
    run_push(web.engine, web.settings, rid)
    from ticketing.models import OutboxMessage

    with session_scope(web.engine, read_only=True) as s:
        body = s.exec(select(OutboxMessage.body)).one()
    token = body.split(PUSH_PATH)[1].split()[0]
    web.client.cookies.clear()  # the enterprise, not logged in
    page = web.client.get(f"/portal/p/{token}")
    assert page.status_code == 200 and "测试政策：中小微企业稳岗补贴" in page.text
    web.client.get(f"/portal/p/{token}")
    assert _count(web, PolicyPushOpen) == 2
    assert web.client.get("/portal/p/not-a-token").status_code == 404
    form = web.client.get(f"/portal/p/{token}/optout")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    bad = web.client.post(f"/portal/p/{token}/optout", data={"csrf": "x"})
    assert bad.status_code == 403
    done = web.client.post(f"/portal/p/{token}/optout", data={"csrf": csrf})
    assert done.status_code == 200 and "已退订" in done.text
    with session_scope(web.engine, read_only=True) as s:
        assert s.get(Enterprise, eid).push_opt_out
        assert s.exec(select(PolicyPush.open_count)).one() == 2
    assert "贵单位已退订政策推送" in web.client.get(f"/portal/p/{token}").text


def test_digest_link_lists_the_policies_and_logs_each_open(web: Web):
    from ticketing.models import OutboxMessage
    from ticketing.policy_push import request_enterprise_push

    with session_scope(web.engine) as s:
        ent = enterprise(s, web.settings, 1)
        pids = [policy(s, web.settings, title=f"惠企政策{i}").id for i in (1, 2, 3)]
        other = policy(s, web.settings, title="别家政策", industries=["F52"]).id
        rid = request_enterprise_push(s, web.settings, ent.id, "dispatcher").id
    run_push(web.engine, web.settings, rid)
    with session_scope(web.engine, read_only=True) as s:
        body = s.exec(select(OutboxMessage.body)).one()  # one SMS for the three
    assert "为您匹配到3项惠企政策" in body
    token = body.split(PUSH_PATH)[1].split()[0]
    web.client.cookies.clear()
    page = web.client.get(f"/portal/p/{token}")
    assert page.status_code == 200 and "为您匹配到3项惠企政策" in page.text
    links = re.findall(rf'href="/portal/p/{re.escape(token)}/(\d+)"', page.text)
    assert sorted(int(x) for x in links) == sorted(pids)
    assert f"/portal/p/{token}/optout" in page.text
    assert _count(web, PolicyPushOpen) == 0  # the list is no policy's open
    for pid in pids:
        one = web.client.get(f"/portal/p/{token}/{pid}")
        assert one.status_code == 200 and f"惠企政策{pids.index(pid) + 1}" in one.text
        assert f'href="/portal/p/{token}"' in one.text  # back to the list
    web.client.get(f"/portal/p/{token}/{pids[0]}")
    assert web.client.get(f"/portal/p/{token}/{other}").status_code == 404  # not in this SMS
    with session_scope(web.engine, read_only=True) as s:
        counts = dict(s.exec(select(PolicyPush.article_id, PolicyPush.open_count)).all())
    assert counts == {pids[0]: 2, pids[1]: 1, pids[2]: 1}
    assert _count(web, PolicyPushOpen) == 4
