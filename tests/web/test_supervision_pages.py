"""The §14–15 pages (issue #11): the ticket page's 督办 button, a head's 督办 list with its
acknowledgement, the leader's red board, the agents' 回访 list; each refused to other roles."""

from __future__ import annotations

from console_helpers import DEPT_A, DEPT_B
from sqlmodel import select
from test_flow import file_walk_in
from web_helpers import Web

from config.database import session_scope
from ticketing import CallbackTask, Escalation, Ticket


def _dispatch(web: Web, number: str) -> None:
    web.login("dispatcher")
    r = web.client.post(
        f"/tickets/{number}/dispatch",
        data={"csrf_token": web.csrf(f"/tickets/{number}"), "departments": [DEPT_A, DEPT_B]},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_supervise_from_the_ticket_page_then_the_head_acknowledges(web: Web):
    number = file_walk_in(web)
    _dispatch(web, number)
    page = web.client.get(f"/tickets/{number}")
    assert "发起督办" not in page.text  # a dispatcher may not supervise
    web.login("supervisor")
    page = web.client.get(f"/tickets/{number}")
    assert "发起督办" in page.text
    csrf = web.csrf(f"/tickets/{number}")
    r = web.client.post(
        f"/tickets/{number}/supervise", data={"csrf_token": csrf, "note": " "},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303 and "supervise_error" in r.headers["location"]
    r = web.client.post(
        f"/tickets/{number}/supervise",
        data={"csrf_token": csrf, "note": "请本周内办结", "due_at": "2099-01-01T10:00"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("done=supervise")
    assert web.client.get(f"/tickets/{number}").text.count("督办") >= 2
    listing = web.client.get("/supervision")
    assert listing.status_code == 200 and number in listing.text
    assert "/acknowledge" in listing.text  # a supervisor may acknowledge for any department

    with session_scope(web.engine, read_only=True) as s:
        rows = {
            e.department_code: e.id
            for e in s.exec(select(Escalation).where(Escalation.kind == "supervise"))
        }
    # a handler who is not the department's head sees the list, without the acknowledgement
    web.login("handler")
    mine = web.client.get("/supervision")
    assert number in mine.text and "/acknowledge" not in mine.text
    assert "待单位负责人确认" in mine.text
    r = web.client.post(
        f"/supervision/{rows[DEPT_A]}/acknowledge", data={"csrf_token": web.csrf("/supervision")},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 403 and "只有单位负责人可以确认督办" in r.text
    # the administrator marks the handler as its department's head on the user page
    web.login("admin")
    uid = web.user_ids["handler"]
    r = web.client.post(
        f"/admin/users/{uid}",
        data={
            "csrf_token": web.csrf(f"/admin/users/{uid}"),
            "role": "handler",
            "department_code": DEPT_A,
            "display_name": "",
            "is_head": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert "单位负责人" in web.client.get("/admin/users").text
    web.login("handler")
    mine = web.client.get("/supervision")
    assert number in mine.text and "/acknowledge" in mine.text and "（单位负责人）" in mine.text
    csrf = web.csrf("/supervision")
    r = web.client.post(
        f"/supervision/{rows[DEPT_B]}/acknowledge", data={"csrf_token": csrf},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 404  # another department's 督办
    r = web.client.post(
        f"/supervision/{rows[DEPT_A]}/acknowledge",
        data={"csrf_token": csrf, "note": "已安排"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = web.client.post(
        f"/supervision/{rows[DEPT_A]}/acknowledge", data={"csrf_token": "bad"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 403  # CSRF first
    assert number in web.client.get("/supervision?view=acknowledged").text
    assert web.client.get("/redboard").status_code == 403


def test_red_board_and_revisit_pages(web: Web):
    number = file_walk_in(web)
    _dispatch(web, number)
    web.login("handler")
    with session_scope(web.engine, read_only=True) as s:
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        from ticketing import SubOrder

        sid = s.exec(
            select(SubOrder.id).where(
                SubOrder.ticket_id == t.id, SubOrder.department_code == DEPT_A
            )
        ).one()
    r = web.client.post(
        f"/suborders/{sid}/return",
        data={"csrf_token": web.csrf(f"/tickets/{number}"), "reason": "超出本部门职权"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    web.login("leader")
    board = web.client.get("/redboard")
    assert board.status_code == 200 and number in board.text and "红色预警" in board.text
    with session_scope(web.engine, read_only=True) as s:
        (eid,) = s.exec(select(Escalation.id).where(Escalation.kind == "special"))
    r = web.client.post(
        f"/redboard/{eid}/coordinator",
        data={"csrf_token": web.csrf("/redboard"), "coordinator": "分管副市长"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "分管副市长" in web.client.get("/redboard").text
    assert web.client.get("/revisits").status_code == 403
    web.login("agent")
    with session_scope(web.engine) as s:
        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        task = CallbackTask(
            ticket_id=t.id, phone="+8613812345678", reason="revisit", note="不满意回访"
        )
        s.add(task)
        s.flush()
        tid = task.id
    page = web.client.get("/revisits")
    assert page.status_code == 200 and number in page.text
    r = web.client.post(
        f"/revisits/{tid}/outcome",
        data={"csrf_token": web.csrf("/revisits"), "outcome": "nonsense"},
        follow_redirects=False,
    )
    assert r.status_code == 422 and "回访结果必须是" in r.text
    r = web.client.post(
        f"/revisits/{tid}/outcome",
        data={"csrf_token": web.csrf("/revisits"), "outcome": "satisfied", "note": "已解决"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "满意：已解决" in web.client.get("/revisits?view=done").text
