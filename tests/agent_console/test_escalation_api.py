"""§14–15 over the API (issue #11): manual 督办 with its acknowledgement by the head only, the
red board's coordinator, 不满意 → 重办 from any channel, and the 回访 tasks with their outcome."""

from __future__ import annotations

from console_helpers import DEPT_A, DEPT_B, assert_error
from sqlmodel import select

from config.database import session_scope
from ticketing.models import TicketEvent


def _ticket(api, departments=(DEPT_A, DEPT_B)):
    c = api.client
    r = c.post(
        "/api/v1/tickets",
        json={
            "channel": "window",
            "content": "企业开办营业执照办理进度咨询，窗口已受理三天仍无结果。",
            "submitter_phone": "13812345678",
            "channel_data": {"window_no": "A3"},
            "category": "enterprise",
            "urgency": "general",
        },
        headers=api.auth("dispatcher"),
    )
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    detail = c.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()
    live = {s["department_code"] for s in detail["suborders"] if s["status"] != "returned"}
    todo = [d for d in departments if d not in live]
    if todo:
        r = c.post(
            f"/api/v1/tickets/{number}/dispatch",
            json={"departments": todo},
            headers=api.auth("dispatcher"),
        )
        assert r.status_code == 200, r.text
    return number


def test_manual_supervision_and_the_heads_acknowledgement(api):
    c = api.client
    number = _ticket(api)
    url = f"/api/v1/tickets/{number}/supervision"
    body = {"note": "企业多次来电，请本周内办结", "due_at": "2099-01-01T10:00:00+08:00"}
    for who in ("agent", "dispatcher", "handler"):
        assert_error(c.post(url, json=body, headers=api.auth(who)), 403, "forbidden")
    assert_error(c.post(url, json={"note": ""}, headers=api.auth("leader")), 422)
    past = {"note": "请加快", "due_at": "2000-01-01T10:00:00+08:00"}
    assert (
        "督办期限"
        in assert_error(c.post(url, json=past, headers=api.auth("leader")), 422)["message"]
    )
    r = c.post(url, json=body, headers=api.auth("supervisor"))
    assert r.status_code == 201, r.text
    rows = {e["department_code"]: e for e in r.json()}
    assert set(rows) == {DEPT_A, DEPT_B}
    assert all(e["kind"] == "supervise" and e["trigger"] == "manual" for e in rows.values())
    # a head sees its own department's only; another department's is a 404
    mine = c.get("/api/v1/escalations?kind=supervise", headers=api.auth("handler")).json()
    assert [e["department_code"] for e in mine] == [DEPT_A]
    other = rows[DEPT_B]["id"]
    assert_error(
        c.post(f"/api/v1/escalations/{other}/acknowledge", headers=api.auth("handler")), 404
    )
    for who in ("agent", "dispatcher", "leader"):
        assert_error(c.post(f"/api/v1/escalations/{other}/acknowledge", headers=api.auth(who)), 403)
    # a supervisor may acknowledge for any department
    r = c.post(f"/api/v1/escalations/{other}/acknowledge", headers=api.auth("supervisor"))
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "supervisor", r.text
    own = rows[DEPT_A]["id"]
    # a handler of the department who is not its head may not
    assert_error(
        c.post(f"/api/v1/escalations/{own}/acknowledge", headers=api.auth("handler")),
        403,
        "not_head",
    )
    # the administrator marks the handler as the department's head (only a handler can be one)
    r = c.patch(
        f"/api/v1/users/{api.user_ids['supervisor']}",
        json={"is_head": True},
        headers=api.auth("admin"),
    )
    assert_error(r, 422, "head_not_handler")
    r = c.patch(
        f"/api/v1/users/{api.user_ids['handler']}",
        json={"is_head": True},
        headers=api.auth("admin"),
    )
    assert r.status_code == 200 and r.json()["is_head"] is True, r.text
    r = c.post(
        f"/api/v1/escalations/{own}/acknowledge",
        json={"note": "已安排专人"},
        headers=api.auth("handler"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged" and r.json()["acknowledged_by"] == "handler"
    again = c.post(f"/api/v1/escalations/{own}/acknowledge", headers=api.auth("handler"))
    assert_error(again, 409, "already_acknowledged")
    detail = c.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()
    actions = [e["action"] for e in detail["events"]]
    assert actions.count("escalation_supervise") == 2
    assert "supervision_acknowledged" in actions


def test_the_red_board_takes_a_coordinator_from_a_leader(api):
    c = api.client
    number = _ticket(api, departments=(DEPT_A,))
    detail = c.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()
    (so,) = [s for s in detail["suborders"] if s["department_code"] == DEPT_A]
    r = c.post(
        f"/api/v1/suborders/{so['id']}/return",
        json={"reason": "超出本部门职权，需市级协调"},
        headers=api.auth("handler"),
    )
    assert r.status_code == 200, r.text
    detail = c.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()
    assert detail["warning"] == "red"
    board = c.get("/api/v1/escalations?kind=special&status=open", headers=api.auth("leader"))
    (special,) = [e for e in board.json() if e["ticket_number"] == number]
    assert special["coordinator"]
    url = f"/api/v1/escalations/{special['id']}/coordinator"
    assert_error(c.post(url, json={"coordinator": "x"}, headers=api.auth("supervisor")), 403)
    r = c.post(url, json={"coordinator": "常务副市长办公室"}, headers=api.auth("leader"))
    assert r.status_code == 200 and r.json()["coordinator"] == "常务副市长办公室"
    r = c.post(f"/api/v1/escalations/{special['id']}/close", headers=api.auth("leader"))
    assert r.status_code == 200 and r.json()["status"] == "closed"


def test_unsatisfied_from_the_public_link_is_redone_and_an_agent_revisits(api):
    c = api.client
    number = _ticket(api, departments=(DEPT_A,))
    detail = c.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()
    (so,) = [s for s in detail["suborders"] if s["department_code"] == DEPT_A]
    for step, body in (("accept", None), ("reply", {"text": "已办结"})):
        r = c.post(
            f"/api/v1/suborders/{so['id']}/{step}",
            json=body,
            headers=api.auth("handler"),
        )
        assert r.status_code == 200, r.text
    bad = {"process": "unsatisfied", "timeliness": "unsatisfied", "result": "unsatisfied"}
    r = c.post(f"/api/v1/tickets/{number}/evaluation", json=bad, headers=api.auth("agent"))
    assert r.status_code == 201, r.text
    detail = c.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()
    assert detail["status"] == "dispatched" and detail["round"] == 2
    redo = [s for s in detail["suborders"] if s["round"] == 2]
    assert [s["department_code"] for s in redo] == [DEPT_A]
    # recorded by an agent on a call (回访 channel): no second 回访 task for it
    assert c.get("/api/v1/revisits", headers=api.auth("agent")).json() == []
    with session_scope(api.engine) as s:  # the submitter's own 不满意 on the next round
        from ticketing.evaluation import evaluate
        from ticketing.models import Ticket

        t = s.exec(select(Ticket).where(Ticket.number == number)).one()
        from ticketing import dispatch as d

        for sub in redo:
            d.accept(s, api.settings, sub["id"], actor="handler")
            d.reply(s, api.settings, sub["id"], actor="handler", text="再次办理")
        evaluate(
            s,
            api.settings,
            t,
            process="不满意",
            timeliness="满意",
            result="满意",
            actor="public",
        )
    tasks = c.get("/api/v1/revisits", headers=api.auth("agent")).json()
    assert [t["ticket_number"] for t in tasks] == [number]
    assert_error(c.get("/api/v1/revisits", headers=api.auth("handler")), 403)
    url = f"/api/v1/revisits/{tasks[0]['id']}/outcome"
    assert_error(c.post(url, json={"outcome": "好"}, headers=api.auth("agent")), 422)
    r = c.post(url, json={"outcome": "unreachable", "note": "无人接听"}, headers=api.auth("agent"))
    assert r.status_code == 200 and r.json()["status"] == "done"
    assert_error(c.post(url, json={"outcome": "satisfied"}, headers=api.auth("agent")), 409)
    with session_scope(api.engine, read_only=True) as s:
        done = s.exec(select(TicketEvent).where(TicketEvent.action == "revisit_done")).one()
    assert done.detail["outcome"] == "unreachable"
