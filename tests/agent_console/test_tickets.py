"""The closed loop over HTTP (受理-派单-办理-评价), search, detail, handler isolation, bad inputs."""

from __future__ import annotations

from console_helpers import DEPT_A, DEPT_B, assert_error

from ticketing.models import Evaluation, SubOrder, Ticket, TicketEvent

USCC = "91350100M000100Y43"  # valid check digit (GB 32100-2015 example)


def _create(api, who="dispatcher", **over):
    body = {
        "channel": "window",
        "content": "企业开办营业执照办理进度咨询，窗口已受理三天仍无结果。",
        "submitter_name": "张先生",
        "submitter_phone": "13812345678",
        "channel_data": {"window_no": "A3"},
        "category": "enterprise",
        "urgency": "general",
    }
    body.update(over)
    r = api.client.post("/api/v1/tickets", json=body, headers=api.auth(who))
    assert r.status_code == 201, r.text
    return r.json()


def _live(api, number):
    detail = api.client.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()
    return {s["department_code"]: s["id"] for s in detail["suborders"] if s["status"] != "returned"}


def _dispatch(api, number, departments, who="dispatcher"):
    """Dispatch to the departments auto-dispatch did not already pick; returns dept -> sub-order."""
    todo = [d for d in departments if d not in _live(api, number)]
    if todo:
        r = api.client.post(
            f"/api/v1/tickets/{number}/dispatch",
            json={"departments": todo, "instructions": "请尽快办理"},
            headers=api.auth(who),
        )
        assert r.status_code == 200, r.text
    return _live(api, number)


def test_closed_loop_public_submission_to_evaluation(api):
    c = api.client
    # 受理: the public web form
    r = c.post(
        "/api/v1/public/tickets",
        json={
            "channel": "web",
            "content": "我公司办理税务登记和市场主体变更遇到困难，希望两个部门协同处理。",
            "submitter_phone": "+86 138 1234 5678",
            "enterprise_uscc": USCC,
            "enterprise_name": "测试科技有限公司",
        },
    )
    assert r.status_code == 201, r.text
    sub = r.json()
    number, token, ev_token = sub["number"], sub["notice_token"], sub["evaluation_token"]
    assert number.startswith("DXE-") and token and ev_token and ev_token != token
    # the submitter confirms the acceptance notice
    r = c.post(f"/api/v1/public/notices/{token}/confirm")
    assert r.status_code == 200 and r.json()["ticket_number"] == number
    # 派单: parallel dispatch to two departments (whatever auto-dispatch did, add both)
    detail = c.get(f"/api/v1/tickets/{number}", headers=api.auth("dispatcher")).json()
    live = {s["department_code"] for s in detail["suborders"] if s["status"] != "returned"}
    todo = [d for d in (DEPT_A, DEPT_B) if d not in live]
    if todo:
        _dispatch(api, number, todo)
    detail = c.get(f"/api/v1/tickets/{number}", headers=api.auth("dispatcher")).json()
    subs = {s["department_code"]: s["id"] for s in detail["suborders"] if s["status"] != "returned"}
    assert {DEPT_A, DEPT_B} <= set(subs)
    assert detail["status"] == "dispatched"
    # 办理: each handler on its own sub-order
    for dept, handler in ((DEPT_A, "handler"), (DEPT_B, "handler_b")):
        h = api.auth(handler)
        assert c.post(f"/api/v1/suborders/{subs[dept]}/accept", headers=h).status_code == 200
    others = [d for d in subs if d not in (DEPT_A, DEPT_B)]
    for d in others:  # auto-dispatch may have picked a third department: let admin reply for it
        c.post(f"/api/v1/suborders/{subs[d]}/accept", headers=api.auth("admin"))
        c.post(
            f"/api/v1/suborders/{subs[d]}/reply", json={"text": "已办"}, headers=api.auth("admin")
        )
    r = c.post(
        f"/api/v1/suborders/{subs[DEPT_B]}/extension",
        json={"reason": "需要调取档案", "amount": 1, "unit": "working_days"},
        headers=api.auth("handler_b"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "extension_requested"
    r = c.post(
        f"/api/v1/suborders/{subs[DEPT_B]}/extension/decision",
        json={"approve": True, "note": "同意"},
        headers=api.auth("supervisor"),
    )
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    r = c.post(
        f"/api/v1/suborders/{subs[DEPT_A]}/reply",
        json={"text": "已办理完毕"},
        headers=api.auth("handler"),
    )
    assert r.status_code == 200, r.text
    t = c.get(f"/api/v1/tickets/{number}", headers=api.auth("leader")).json()
    assert t["status"] == "dispatched"  # one department still working
    r = c.post(
        f"/api/v1/suborders/{subs[DEPT_B]}/reply",
        json={"text": "税务登记已变更"},
        headers=api.auth("handler_b"),
    )
    assert r.status_code == 200, r.text
    t = c.get(f"/api/v1/tickets/{number}", headers=api.auth("leader")).json()
    assert t["status"] == "resolved"
    # 评价: the submitter, authorised by the evaluation token only (not the confirm token)
    rating = {"process": "satisfied", "timeliness": "basically_satisfied", "result": "satisfied"}
    url = f"/api/v1/public/tickets/{number}/evaluation"
    for wrong_token in ("x" * 20, token):
        wrong = c.post(url, json={**rating, "evaluation_token": wrong_token})
        assert_error(wrong, 404)
    r = c.post(url, json={**rating, "evaluation_token": ev_token})
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "submitter" and r.json()["channel"] == "link"
    again = c.post(url, json={**rating, "evaluation_token": ev_token})
    assert_error(again, 409)
    t = c.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()
    assert t["status"] == "closed"
    assert len(t["evaluations"]) == 1 and len(t["notices"]) >= 1
    assert all("confirm_token" not in n for n in t["notices"])
    actions = [e["action"] for e in t["events"]]
    for a in (
        "created",
        "notice_confirmed",
        "suborder_accepted",
        "extension_requested",
        "extension_approved",
        "suborder_replied",
        "resolved",
    ):
        assert a in actions, (a, actions)
    # 一企一档
    f = c.get(f"/api/v1/enterprises/{USCC}", headers=api.auth("agent"))
    assert f.status_code == 200 and number in [x["number"] for x in f.json()["tickets"]]


def test_unsatisfied_staff_evaluation_reopens(api):
    c = api.client
    t = _create(api)
    subs = _dispatch(api, t["number"], [DEPT_A])
    c.post(f"/api/v1/suborders/{subs[DEPT_A]}/accept", headers=api.auth("handler"))
    for extra in c.get(f"/api/v1/tickets/{t['number']}", headers=api.auth("admin")).json()[
        "suborders"
    ]:
        if extra["department_code"] != DEPT_A and extra["status"] != "returned":
            c.post(f"/api/v1/suborders/{extra['id']}/accept", headers=api.auth("admin"))
            c.post(
                f"/api/v1/suborders/{extra['id']}/reply",
                json={"text": "x"},
                headers=api.auth("admin"),
            )
    c.post(
        f"/api/v1/suborders/{subs[DEPT_A]}/reply",
        json={"text": "办结"},
        headers=api.auth("handler"),
    )
    r = c.post(
        f"/api/v1/tickets/{t['number']}/evaluation",
        json={"process": "unsatisfied", "timeliness": "unsatisfied", "result": "unsatisfied"},
        headers=api.auth("agent"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["overall"] == "unsatisfied" and r.json()["responsible_person"]
    t2 = c.get(f"/api/v1/tickets/{t['number']}", headers=api.auth("admin")).json()
    assert t2["status"] == "dispatched" and t2["round"] == 2  # 重办 to the same department


def test_illegal_transitions_are_409_and_write_nothing(api):
    c = api.client
    t = _create(api)
    subs = _dispatch(api, t["number"], [DEPT_A])
    events_before = api.count(TicketEvent)
    # reply before accept
    r = c.post(
        f"/api/v1/suborders/{subs[DEPT_A]}/reply", json={"text": "x"}, headers=api.auth("handler")
    )
    assert_error(r, 409, "illegal_transition")
    # evaluate a ticket that is not resolved
    r = c.post(
        f"/api/v1/tickets/{t['number']}/evaluation",
        json={"process": "satisfied", "timeliness": "satisfied", "result": "satisfied"},
        headers=api.auth("dispatcher"),
    )
    assert_error(r, 409)
    # decide an extension nobody asked for
    r = c.post(
        f"/api/v1/suborders/{subs[DEPT_A]}/extension/decision",
        json={"approve": True},
        headers=api.auth("dispatcher"),
    )
    assert_error(r, 409)
    # an extension beyond the policy's maximum (the error details carry datetimes)
    c.post(f"/api/v1/suborders/{subs[DEPT_A]}/accept", headers=api.auth("handler"))
    events_before = api.count(TicketEvent)
    r = c.post(
        f"/api/v1/suborders/{subs[DEPT_A]}/extension",
        json={"reason": "很久", "until": "2099-01-01T00:00:00+08:00"},
        headers=api.auth("handler"),
    )
    err = assert_error(r, 422)
    assert err["details"]["field"] == "until" and "limit" in err["details"]
    r = c.post(
        f"/api/v1/suborders/{subs[DEPT_A]}/extension",
        json={"reason": "缺参数"},
        headers=api.auth("handler"),
    )
    assert_error(r, 422)
    # dispatch the same department twice in a round
    r = c.post(
        f"/api/v1/tickets/{t['number']}/dispatch",
        json={"departments": [DEPT_A]},
        headers=api.auth("dispatcher"),
    )
    assert_error(r, 409)
    assert api.count(TicketEvent) == events_before
    assert api.count(Evaluation) == 0


def test_bad_inputs_return_the_error_shape_and_write_nothing(api):
    c = api.client
    h = {**api.auth("dispatcher")}
    good = {"channel": "window", "content": "咨询", "channel_data": {"window_no": "1"}}
    before = (api.count(Ticket), api.count(TicketEvent))
    r = c.post(
        "/api/v1/tickets",
        content=b'{"channel": "web", "content": ',
        headers={**h, "content-type": "application/json"},
    )
    err = assert_error(r, 422, "validation_error")
    cases = [
        ({**good, "channel": 5}, "channel"),
        ({**good, "content": ["x"]}, "content"),
        ({**good, "urgency": "whenever"}, "urgency"),
        ({**good, "unknown_field": 1}, "unknown_field"),
        ({**good, "content": "x" * 20001}, "content"),
    ]
    for body, field in cases:
        err = assert_error(c.post("/api/v1/tickets", json=body, headers=h), 422, "validation_error")
        assert any(d["field"].startswith(field) for d in err["details"]), err
        # values are never echoed back (they may be secrets)
        assert all("input" not in d for d in err["details"])
    for body in (
        {**good, "enterprise_uscc": "91350100M000100Y44"},  # wrong check digit
        {**good, "submitter_phone": "12345"},
        {**good, "submitter_phone": "not a phone"},
        {**good, "departments": ["NOPE"]},
        {"channel": "hotline", "content": "来电"},  # hotline needs channel_data.call_id
    ):
        assert_error(c.post("/api/v1/tickets", json=body, headers=h), 422)
    t = _create(api)
    before = (api.count(Ticket), api.count(TicketEvent), api.count(SubOrder))
    r = c.post(
        f"/api/v1/tickets/{t['number']}/dispatch",
        json={"departments": [DEPT_A, "NOPE"]},
        headers=h,
    )
    assert_error(r, 422)
    assert_error(
        c.post(f"/api/v1/tickets/{t['number']}/dispatch", json={"departments": []}, headers=h), 422
    )
    assert_error(
        c.post(
            "/api/v1/tickets/DXE-19990101-000001/dispatch",
            json={"departments": [DEPT_A]},
            headers=h,
        ),
        404,
    )
    assert_error(c.get("/api/v1/enterprises/not-a-uscc", headers=h), 422)
    assert_error(c.get(f"/api/v1/enterprises/{USCC}", headers=h), 404)
    assert_error(c.get("/api/v1/tickets?page_size=101", headers=h), 422)
    assert_error(c.get("/api/v1/tickets?page=0", headers=h), 422)
    assert_error(c.get("/api/v1/tickets?status=bogus", headers=h), 422)
    assert_error(c.get("/api/v1/tickets?uscc=123", headers=h), 422)
    assert_error(c.get("/api/v1/tickets?created_from=yesterday", headers=h), 422)
    assert_error(c.post("/api/v1/suborders/abc/accept", headers=api.auth("handler")), 422)
    assert_error(c.post("/api/v1/suborders/999999/accept", headers=api.auth("handler")), 404)
    assert_error(c.post(f"/api/v1/suborders/{2**31}/accept", headers=api.auth("handler")), 422)
    assert_error(c.patch(f"/api/v1/users/{2**63}", json={}, headers=api.auth("admin")), 422)
    assert (api.count(Ticket), api.count(TicketEvent), api.count(SubOrder)) == before


def test_search_filters_and_paging(api):
    c = api.client
    a = _create(api, content="营业执照变更登记咨询事项")
    _create(
        api,
        channel="opinion",
        channel_data={"source_url": "https://news.example.cn/a"},
        content="网络舆情反映园区道路施工影响企业经营",
    )
    _create(api, content="社保缴费基数调整咨询", urgency="urgent")
    h = api.auth("leader")
    page = c.get("/api/v1/tickets?page_size=2", headers=h).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["page"] == 1
    page2 = c.get("/api/v1/tickets?page_size=2&page=2", headers=h).json()
    assert len(page2["items"]) == 1
    assert c.get("/api/v1/tickets?channel=opinion", headers=h).json()["total"] == 1
    assert c.get("/api/v1/tickets?urgency=urgent", headers=h).json()["total"] == 1
    found = c.get("/api/v1/tickets", params={"q": "营业执照"}, headers=h).json()
    assert [t["number"] for t in found["items"]] == [a["number"]]
    assert (
        c.get("/api/v1/tickets", params={"phone": "138 1234 5678"}, headers=h).json()["total"] == 3
    )
    assert (
        c.get(
            "/api/v1/tickets?created_from=2000-01-01T00:00:00&created_to=2000-01-02T00:00:00",
            headers=h,
        ).json()["total"]
        == 0
    )


def test_handler_isolation(api):
    """A handler sees tickets only through its department's sub-orders: other tickets are 404
    (indistinguishable from missing), other inboxes 403, other sub-orders 404."""
    c = api.client
    t = _create(api, departments=[DEPT_A])
    detail = c.get(f"/api/v1/tickets/{t['number']}", headers=api.auth("admin")).json()
    so_a = next(s["id"] for s in detail["suborders"] if s["department_code"] == DEPT_A)
    other_depts = {s["department_code"] for s in detail["suborders"]} - {DEPT_A}
    assert DEPT_B not in other_depts
    ha, hb = api.auth("handler"), api.auth("handler_b")
    assert c.get(f"/api/v1/tickets/{t['number']}", headers=ha).status_code == 200
    missing = c.get("/api/v1/tickets/DXE-19990101-000001", headers=hb)
    hidden = c.get(f"/api/v1/tickets/{t['number']}", headers=hb)
    assert_error(hidden, 404)
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"]
    assert_error(c.post(f"/api/v1/suborders/{so_a}/accept", headers=hb), 404)
    assert_error(c.post(f"/api/v1/suborders/{so_a}/reply", json={"text": "x"}, headers=hb), 404)
    assert_error(c.get(f"/api/v1/departments/{DEPT_A}/inbox", headers=hb), 403)
    assert c.get(f"/api/v1/departments/{DEPT_B}/inbox", headers=hb).json()["total"] == 0
    inbox = c.get(f"/api/v1/departments/{DEPT_A}/inbox", headers=ha).json()
    assert [i["suborder"]["id"] for i in inbox["items"]] == [so_a]
    assert c.get("/api/v1/tickets", headers=hb).json()["total"] == 0
    assert c.get("/api/v1/tickets", headers=ha).json()["total"] == 1
    assert_error(c.get(f"/api/v1/tickets?department={DEPT_A}", headers=hb), 403)
    assert_error(c.get(f"/api/v1/enterprises/{USCC}", headers=ha), 403)
    # the ticket's other departments' sub-orders are not shown to handler A either
    mine = c.get(f"/api/v1/tickets/{t['number']}", headers=ha).json()
    assert {s["department_code"] for s in mine["suborders"]} == {DEPT_A}


def test_handler_return_goes_back_to_dispatcher(api):
    c = api.client
    t = _create(api, departments=[DEPT_A])
    detail = c.get(f"/api/v1/tickets/{t['number']}", headers=api.auth("admin")).json()
    so = next(s["id"] for s in detail["suborders"] if s["department_code"] == DEPT_A)
    assert_error(
        c.post(f"/api/v1/suborders/{so}/return", json={"reason": ""}, headers=api.auth("handler")),
        422,
    )
    r = c.post(
        f"/api/v1/suborders/{so}/return",
        json={"reason": "不属于本部门职责"},
        headers=api.auth("handler"),
    )
    assert r.status_code == 200 and r.json()["status"] == "returned"
    t2 = c.get(f"/api/v1/tickets/{t['number']}", headers=api.auth("dispatcher")).json()
    if len([s for s in t2["suborders"] if s["status"] != "returned"]) == 0:
        assert t2["status"] == "pending_dispatch"
