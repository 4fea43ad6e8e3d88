"""POST /api/v1/tickets/{number}/resolution-summary: a dispatcher approves what the submitter is
told of a resolved ticket (notices.yaml resolution_reply: summary)."""

from __future__ import annotations

import re

from console_helpers import DEPT_A, assert_error
from sqlmodel import select
from test_tickets import _create, _dispatch

from config.database import session_scope
from ticketing import OutboxMessage


def _resolved(api) -> str:
    number = _create(api)["number"]
    sid = _dispatch(api, number, [DEPT_A])[DEPT_A]
    c = api.client
    assert c.post(f"/api/v1/suborders/{sid}/accept", headers=api.auth("handler")).status_code == 200
    r = c.post(
        f"/api/v1/suborders/{sid}/reply", json={"text": "已办结"}, headers=api.auth("handler")
    )
    assert r.status_code == 200, r.text
    return number


def test_only_dispatchers_approve_a_summary_of_a_resolved_ticket(api):
    number = _create(api)["number"]
    url = f"/api/v1/tickets/{number}/resolution-summary"
    body = {"text": "您反映的问题已解决。"}
    assert_error(api.client.post(url, json=body, headers=api.auth("dispatcher")), 409)
    number = _resolved(api)
    url = f"/api/v1/tickets/{number}/resolution-summary"
    assert_error(api.client.post(url, json=body, headers=api.auth("handler")), 403)
    assert_error(api.client.post(url, json={"text": ""}, headers=api.auth("dispatcher")), 422)
    r = api.client.post(url, json=body, headers=api.auth("dispatcher"))
    assert r.status_code == 200 and r.json() == {"number": number, "sms_sent": True}
    with session_scope(api.engine, read_only=True) as s:
        texts = [
            m.body for m in s.exec(select(OutboxMessage).where(OutboxMessage.kind == "resolved"))
        ]
    assert any("您反映的问题已解决" in t and re.search(r"/portal/rate/\S+token=", t) for t in texts)
