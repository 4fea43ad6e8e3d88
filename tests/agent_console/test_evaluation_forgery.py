"""Issue #17 §2: no department (no staff role at all) can rate a ticket in the citizen's name.

Everything a staff role can read about a ticket is searched for anything token-like, and every
candidate is tried on the public evaluation and confirmation; then the staff-recorded 回访 path is
checked not to lock the submitter out."""

from __future__ import annotations

import re

from console_helpers import DEPT_A, ROLES, assert_error

RATING = {"process": "satisfied", "timeliness": "satisfied", "result": "satisfied"}
UNSATISFIED = {"process": "unsatisfied", "timeliness": "satisfied", "result": "satisfied"}
TOKENISH = re.compile(r"[A-Za-z0-9_\-]{20,}")


def _resolved_public_ticket(api) -> dict:
    """A public submission, dispatched to DEPT_A (so its handler reads it) and resolved."""
    c = api.client
    r = c.post(
        "/api/v1/public/tickets",
        json={
            "channel": "web",
            "content": "我公司营业执照变更登记办理进度咨询，已提交材料一周仍无结果。",
            "submitter_phone": "13812345678",
        },
    )
    assert r.status_code == 201, r.text
    sub = r.json()
    number = sub["number"]
    admin = api.auth("admin")
    detail = c.get(f"/api/v1/tickets/{number}", headers=admin).json()
    live = {s["department_code"] for s in detail["suborders"] if s["status"] != "returned"}
    if DEPT_A not in live:
        r = c.post(
            f"/api/v1/tickets/{number}/dispatch",
            json={"departments": [DEPT_A]},
            headers=api.auth("dispatcher"),
        )
        assert r.status_code == 200, r.text
    detail = c.get(f"/api/v1/tickets/{number}", headers=admin).json()
    for s in detail["suborders"]:
        if s["status"] == "returned":
            continue
        assert c.post(f"/api/v1/suborders/{s['id']}/accept", headers=admin).status_code == 200
        r = c.post(f"/api/v1/suborders/{s['id']}/reply", json={"text": "已办"}, headers=admin)
        assert r.status_code == 200, r.text
    assert c.get(f"/api/v1/tickets/{number}", headers=admin).json()["status"] == "resolved"
    return sub


def _status(api, number: str) -> str:
    return api.client.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()["status"]


def test_no_staff_role_can_forge_the_submitters_evaluation(api):
    sub = _resolved_public_ticket(api)
    number, c = sub["number"], api.client
    url = f"/api/v1/public/tickets/{number}/evaluation"
    seen: dict[str, str] = {}
    for who in (*ROLES, "handler_b"):
        h = api.auth(who)
        texts = [
            c.get(f"/api/v1/tickets/{number}", headers=h).text,
            c.get("/api/v1/tickets", headers=h).text,
            c.get(f"/api/v1/departments/{DEPT_A}/inbox", headers=h).text,
        ]
        if who == "handler":  # the handler of a department on the ticket reads it
            assert number in texts[0]
        for text in texts:
            # the submitter's secrets appear nowhere a staff member can read
            assert sub["notice_token"] not in text and sub["evaluation_token"] not in text
            for cand in TOKENISH.findall(text):
                seen.setdefault(cand, who)
    assert seen, "the detail must have been read"
    for cand, who in seen.items():
        for attempt in (
            c.post(url, json={**RATING, "evaluation_token": cand[:64]}),
            c.post(f"{url}?token={cand[:64]}", json=RATING),
        ):
            assert attempt.status_code in (404, 422), (who, cand, attempt.text)
    assert _status(api, number) == "resolved"
    # the confirm token (the SMS link) does not authorise an evaluation either
    assert_error(c.post(url, json={**RATING, "evaluation_token": sub["notice_token"]}), 404)
    # the submitter's own token does, once
    r = c.post(url, json={**RATING, "evaluation_token": sub["evaluation_token"]})
    assert r.status_code == 201, r.text
    assert (r.json()["source"], r.json()["channel"], r.json()["submitted_by"]) == (
        "submitter",
        "link",
        "public",
    )
    assert _status(api, number) == "closed"


def test_a_staff_recorded_evaluation_does_not_lock_the_submitter_out(api):
    c = api.client
    for who in ("admin", "dispatcher", "agent", "supervisor"):
        sub = _resolved_public_ticket(api)
        number = sub["number"]
        # 回访: staff record the caller's rating on the caller's behalf
        for denied in ("handler", "leader"):
            r = c.post(
                f"/api/v1/tickets/{number}/evaluation", json=RATING, headers=api.auth(denied)
            )
            assert r.status_code in (403, 404), (denied, r.text)
        r = c.post(f"/api/v1/tickets/{number}/evaluation", json=RATING, headers=api.auth(who))
        assert r.status_code == 201, r.text
        staff = r.json()
        assert (staff["source"], staff["channel"], staff["submitted_by"]) == (
            "staff",
            "callback",
            who,
        )
        assert _status(api, number) == "closed"
        # staff cannot record a second one
        again = c.post(f"/api/v1/tickets/{number}/evaluation", json=RATING, headers=api.auth(who))
        assert_error(again, 409, "already_evaluated")
        # the submitter's own rating still counts, supersedes it, and reopens the matter
        r = c.post(
            f"/api/v1/public/tickets/{number}/evaluation",
            json={**UNSATISFIED, "evaluation_token": sub["evaluation_token"]},
        )
        assert r.status_code == 201, (who, r.text)
        assert r.json()["source"] == "submitter" and r.json()["round"] == staff["round"]
        detail = c.get(f"/api/v1/tickets/{number}", headers=api.auth("admin")).json()
        # reopened and sent back to the same department (重办, #11)
        assert detail["status"] == "dispatched" and detail["round"] == staff["round"] + 1
        by_id = {e["id"]: e for e in detail["evaluations"]}
        assert by_id[staff["id"]]["superseded"] is True
        assert by_id[r.json()["id"]]["superseded"] is False
        # and only once
        r = c.post(
            f"/api/v1/public/tickets/{number}/evaluation",
            json={**RATING, "evaluation_token": sub["evaluation_token"]},
        )
        assert r.status_code == 409, r.text


def test_staff_cannot_record_over_the_submitters_rating(api):
    c = api.client
    sub = _resolved_public_ticket(api)
    number = sub["number"]
    r = c.post(
        f"/api/v1/public/tickets/{number}/evaluation",
        json={**RATING, "evaluation_token": sub["evaluation_token"]},
    )
    assert r.status_code == 201, r.text
    r = c.post(f"/api/v1/tickets/{number}/evaluation", json=UNSATISFIED, headers=api.auth("agent"))
    assert_error(r, 409)
    assert _status(api, number) == "closed"
