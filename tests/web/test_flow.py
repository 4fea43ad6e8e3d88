"""The closed loop through the pages (TestClient): window intake → the dispatch desk → parallel
dispatch → each department's inbox → replies → resolved; and the pages' refusals."""

from __future__ import annotations

import re

import pytest
from console_helpers import DEPT_A, DEPT_B
from sqlmodel import select
from web_helpers import Web

from config.database import session_scope
from ticketing import SubOrder, Ticket

VAGUE = "嗯嗯那个就是想问一下"  # nothing for the classifier to go on: manual dispatch


def file_walk_in(web: Web, content: str = VAGUE, **extra) -> str:
    web.login("dispatcher")
    data = {"csrf_token": web.csrf("/window"), "content": content, "window_no": "3", **extra}
    r = web.client.post("/window", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    m = re.match(r"/tickets/([A-Z0-9-]+)/notice\?new=1", r.headers["location"])
    assert m, r.headers["location"]
    return m.group(1)


def sub_of(web: Web, number: str, dept: str) -> int:
    with session_scope(web.engine, read_only=True) as s:
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        return s.exec(
            select(SubOrder.id).where(SubOrder.ticket_id == t.id, SubOrder.department_code == dept)
        ).one()


def status_of(web: Web, number: str) -> str:
    with session_scope(web.engine, read_only=True) as s:
        return s.exec(select(Ticket.status).where(Ticket.number == number)).one()


@pytest.mark.parametrize("phone", ["13812341234", ""])
def test_the_printed_notice_tells_the_visitor_where_the_link_went_not_a_redaction(
    web: Web, phone: str
):
    """Staff only hold the notice with its links redacted; the paper handed over at the window
    said "请点击确认收到本告知书：…/portal/n/[已隐去]". It now names the SMS (to a mainland
    mobile) and the portal's tracking page, and the visitor's secret is still never shown."""
    number = file_walk_in(web, submitter_phone=phone) if phone else file_walk_in(web)
    page = web.client.get(f"/tickets/{number}/notice?new=1").text
    paper = page.split('<article class="paper">')[1].split("</article>")[0]
    assert "已隐去" not in paper and "/portal/n/" not in paper
    assert "/portal/track" in paper and "凭工单编号和手机号查询办理进度" in paper
    assert ("尾号1234的手机" in paper) == bool(phone)
    assert number in paper and "承诺办结时限" in paper


def test_walk_in_to_resolved_through_the_pages(web: Web):
    number = file_walk_in(web)
    notice = web.client.get(f"/tickets/{number}/notice?new=1")
    assert notice.status_code == 200 and "受理告知书" in notice.text and number in notice.text
    assert status_of(web, number) == "pending_dispatch"
    desk = web.client.get("/dispatch")
    assert number in desk.text

    csrf = web.csrf(f"/tickets/{number}")
    r = web.client.post(
        f"/tickets/{number}/dispatch",
        data={"csrf_token": csrf, "departments": [DEPT_A, DEPT_B], "instructions": "请协同办理"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert status_of(web, number) == "dispatched"
    assert number not in web.client.get("/dispatch").text

    for handler, dept in (("handler", DEPT_A), ("handler_b", DEPT_B)):
        web.login(handler)
        inbox = web.client.get("/inbox")
        assert number in inbox.text
        so = sub_of(web, number, dept)
        csrf = web.csrf("/inbox")
        r = web.client.post(f"/suborders/{so}/accept", data={"csrf_token": csrf, "back": "inbox"},
                            follow_redirects=False)  # fmt: skip
        assert r.status_code == 303 and r.headers["location"].startswith("/inbox")
        # an empty reply: refused in Chinese, nothing changes
        bad = web.client.post(f"/suborders/{so}/reply", data={"csrf_token": csrf, "text": " "})
        assert bad.status_code == 422 and "回复" in bad.text
        r = web.client.post(
            f"/suborders/{so}/reply",
            data={"csrf_token": csrf, "text": f"{dept} 已办理完毕"},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
    assert status_of(web, number) == "resolved"
    page = web.client.get(f"/tickets/{number}")
    assert "已办结" in page.text


def test_handler_gets_404_for_another_departments_ticket_and_suborder(web: Web):
    number = file_walk_in(web, departments=[DEPT_B])
    so = sub_of(web, number, DEPT_B)
    web.login("handler")  # DEPT_A
    assert web.client.get(f"/tickets/{number}").status_code == 404
    assert web.client.get(f"/tickets/{number}/notice").status_code == 403  # not a handler page
    csrf = web.csrf("/inbox")
    r = web.client.post(f"/suborders/{so}/accept", data={"csrf_token": csrf})
    assert r.status_code == 404
    assert f"/tickets/{number}" not in web.client.get(f"/search?q={number}").text
    web.login("handler_b")
    assert web.client.get(f"/tickets/{number}").status_code == 200


def test_window_form_rejects_bad_input_and_keeps_what_was_typed(web: Web):
    web.login("dispatcher")
    csrf = web.csrf("/window")
    r = web.client.post(
        "/window",
        data={"csrf_token": csrf, "content": "", "submitter_name": "张三", "window_no": "5"},
    )
    assert r.status_code == 422
    assert "请填写诉求内容" in r.text and 'value="张三"' in r.text and 'value="5"' in r.text
    r = web.client.post(
        "/window",
        data={"csrf_token": csrf, "content": "营业执照变更咨询", "enterprise_uscc": "123"},
    )
    assert r.status_code == 422
    assert "统一社会信用代码" in r.text and "营业执照变更咨询" in r.text


def test_dispatch_needs_a_department_and_is_refused_to_other_roles(web: Web):
    number = file_walk_in(web)
    csrf = web.csrf(f"/tickets/{number}")
    r = web.client.post(
        f"/tickets/{number}/dispatch", data={"csrf_token": csrf, "instructions": "x"}
    )
    assert r.status_code == 422 and "请至少选择一个承办部门" in r.text
    assert 'name="instructions" rows="2" maxlength="2000">x<' in r.text
    web.login("leader")
    csrf = web.csrf("/leader")
    r = web.client.post(
        f"/tickets/{number}/dispatch", data={"csrf_token": csrf, "departments": [DEPT_A]}
    )
    assert r.status_code == 403
    assert status_of(web, number) == "pending_dispatch"


def test_search_enterprise_and_leader_pages(web: Web):
    uscc = "91350100M000100Y43"
    number = file_walk_in(web, content="企业开办营业执照办理进度咨询", enterprise_uscc=uscc,
                          enterprise_name="赤壁示范科技有限公司")  # fmt: skip
    r = web.client.get("/search?q=营业执照&category=&page=1")
    assert r.status_code == 200 and number in r.text
    r = web.client.get("/search?from=2020-13-01")
    assert r.status_code == 422 and "日期格式" in r.text
    r = web.client.get(f"/enterprises/{uscc}")
    assert r.status_code == 200 and "赤壁示范科技有限公司" in r.text and number in r.text
    r = web.client.get("/enterprises?uscc=123")
    assert r.status_code == 422
    web.login("leader")
    r = web.client.get("/leader")
    assert r.status_code == 200 and "今日受理" in r.text
    m = re.search(r'data-chart="([^"]+)" id="chart-channel"', r.text)
    assert m and "特殊服务窗口" in m.group(1).replace("&#34;", '"')


def test_a_handler_reads_the_enterprise_on_its_ticket_without_a_link_it_may_not_open(web: Web):
    """一企一档 is not a handler's page: its ticket names the enterprise, and links to it only for
    a role that may open it (the link answered a handler 无权访问)."""
    uscc = "91350100M000100Y43"
    number = file_walk_in(web, content="食品经营许可证延续办理进度咨询", enterprise_uscc=uscc,
                          enterprise_name="赤壁示范科技有限公司", departments=[DEPT_A])  # fmt: skip
    assert f'href="/enterprises/{uscc}"' in web.client.get(f"/tickets/{number}").text
    web.login("handler")  # DEPT_A
    page = web.client.get(f"/tickets/{number}")
    assert page.status_code == 200 and "赤壁示范科技有限公司" in page.text
    assert f'href="/enterprises/{uscc}"' not in page.text
    assert web.client.get(f"/enterprises/{uscc}").status_code == 403


def test_ticket_page_recording_playback_is_access_checked_with_its_transcript(web: Web):
    from recordings import Recording
    from ticketing import record_event

    number = file_walk_in(web, content="来电反映营业执照办理进度慢")
    with session_scope(web.engine) as s:
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        rec = Recording(kind="call", call_id="c-1", ticket_id=t.id, dedupe_key="x:c-1",
                        path="2026/12/07/c-1.wav", duration_s=42.0, codec="pcm_s16le",
                        sample_rate=8000, channels=1, bytes=100, sha256="0" * 64, agent="agent")  # fmt: skip
        s.add(rec)
        s.flush()
        record_event(s, t.id, "asr", "transcript_attached", recording_id=rec.id,
                     text="您好我想问一下营业执照的进度")  # fmt: skip
    web.login("supervisor")  # playback: all
    page = web.client.get(f"/tickets/{number}")
    assert f"/api/v1/recordings/{rec.id}/audio" in page.text
    assert "您好我想问一下营业执照的进度" in page.text
    web.login("dispatcher")  # refused by recordings.yaml: no player, no transcript
    page = web.client.get(f"/tickets/{number}")
    assert "/audio" not in page.text and "您好我想问一下营业执照的进度" not in page.text
    assert "无权收听录音" in page.text


def test_extension_request_and_the_dispatchers_decision(web: Web):
    number = file_walk_in(web, departments=[DEPT_A])
    so = sub_of(web, number, DEPT_A)
    web.login("handler")
    csrf = web.csrf("/inbox")
    web.client.post(f"/suborders/{so}/accept", data={"csrf_token": csrf})
    r = web.client.post(
        f"/suborders/{so}/extension",
        data={"csrf_token": csrf, "amount": "abc", "unit": "working_days", "reason": "需现场核查"},
    )
    assert r.status_code == 422 and "延期时长必须是正整数" in r.text and "需现场核查" in r.text
    r = web.client.post(
        f"/suborders/{so}/extension",
        data={"csrf_token": csrf, "amount": "2", "unit": "working_days", "reason": "需现场核查"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    web.login("handler")
    assert (
        web.client.post(
            f"/suborders/{so}/decision", data={"csrf_token": web.csrf("/inbox"), "approve": "1"}
        ).status_code
        == 403
    )  # a handler cannot approve its own request
    web.login("dispatcher")
    assert "待审批的延期申请" in web.client.get("/dispatch").text
    page = web.client.get(f"/tickets/{number}")
    assert "同意延期" in page.text
    r = web.client.post(
        f"/suborders/{so}/decision",
        data={"csrf_token": web.csrf(f"/tickets/{number}"), "approve": "1", "note": "同意"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with session_scope(web.engine, read_only=True) as s:
        assert s.get(SubOrder, so).status == "accepted"


def test_the_desk_counts_what_is_out_with_departments_and_links_to_each_list(web: Web):
    """The dispatch desk showed only the manual queue: a dispatcher had no view of the matters
    out with departments. It now counts them (and their yellow/red/overdue warnings, and those
    awaiting a rating), each count a link to the search page listing exactly those."""
    from sqlalchemy import update

    numbers = [file_walk_in(web, content=f"营业执照变更咨询 {i}") for i in range(5)]
    with session_scope(web.engine) as s:
        plan = [("dispatched", "red"), ("dispatched", "red"), ("dispatched", "yellow"),
                ("dispatched", "none"), ("resolved", "none")]  # fmt: skip
        for number, (status, warning) in zip(numbers, plan, strict=True):
            s.exec(
                update(Ticket).where(Ticket.number == number).values(status=status, warning=warning)
            )
    desk = web.client.get("/dispatch").text
    strip = desk.split('id="desk-overview"')[1].split("</div>\n<div")[0]
    stats = re.findall(r'href="([^"]+)"><div class="stat-num">(\d+)</div>', strip)
    assert [n for _, n in stats] == ["4", "1", "2", "0", "1"]
    for href, n in stats:
        page = web.client.get(href.replace("&amp;", "&")).text
        assert f"共 {n} 件" in page, href
