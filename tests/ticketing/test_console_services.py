"""What the agent console edits through ticketing (the grade correction is
ticketing.reclassify, tested in test_loop_ends): amend_ticket (content refreshes the classifier's suggestion; enterprise by a valid
统一社会信用代码; nothing written on a refusal), add_note, and the agents' callbacks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from _loop_helpers import events, make_ticket, seed_departments, snapshot

from config.database import session_scope
from ticketing import (
    add_note,
    amend_ticket,
    callbacks_for,
    finish_callback,
    schedule_callback,
)
from ticketing.errors import Conflict, InvalidInput, NotFound
from ticketing.models import Enterprise, Ticket, utcnow
from ticketing.uscc import build_uscc


@pytest.fixture
def world(engine, settings):
    seed_departments(engine, settings)
    return engine, settings


def test_amend_content_enterprise_and_notes(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    before = snapshot(engine, tid)
    for kw, field in (({"content": "  "}, "content"), ({"uscc": "12345"}, "enterprise_uscc")):
        with pytest.raises(InvalidInput) as e, session_scope(engine) as s:
            amend_ticket(s, tid, actor="agent", **kw)
        assert e.value.details["field"] == field
    assert snapshot(engine, tid) == before
    code = build_uscc("MA4F5K2L")
    with session_scope(engine) as s:
        changed = amend_ticket(s, tid, actor="agent", content="企业反映办理食品经营许可证进度缓慢",
                               uscc=code.lower(), enterprise_name="赤壁示例食品有限公司")  # fmt: skip
        assert changed == ["content", "enterprise"]
        t = s.get(Ticket, tid)
        assert t.suggested_department and 0 < t.classifier_confidence <= 1
        assert s.get(Enterprise, t.enterprise_id).uscc == code
        assert amend_ticket(s, tid, actor="agent", uscc=code) == []  # same again: no change
    (ev,) = events(engine, tid, "amended")
    assert ev.detail["uscc"] == code and ev.detail["suggested_department"]
    with pytest.raises(InvalidInput), session_scope(engine) as s:
        add_note(s, tid, "   ", actor="agent")
    with session_scope(engine) as s:
        add_note(s, tid, "来电人要求短信回复", actor="agent")
    assert events(engine, tid, "note")[0].detail["text"] == "来电人要求短信回复"


def test_agents_callbacks_one_per_call_listed_and_closed(world):
    engine, settings = world
    tid = make_ticket(engine, settings)
    now = utcnow()
    with pytest.raises(InvalidInput, match="早于"), session_scope(engine) as s:
        schedule_callback(s, settings, phone="+8613800138000", call_id="c1",
                          due_at=now - timedelta(hours=1), note=None, actor="agent")  # fmt: skip
    with pytest.raises(InvalidInput, match="30 天"), session_scope(engine) as s:
        schedule_callback(s, settings, phone="+8613800138000", call_id="c1",
                          due_at=now + timedelta(days=40), note=None, actor="agent")  # fmt: skip
    with session_scope(engine) as s:
        a, created = schedule_callback(s, settings, phone="+8613800138000", call_id="c1",
                                       due_at=now + timedelta(hours=2), note="告知结果",
                                       actor="agent", ticket_id=tid)  # fmt: skip
        b, again = schedule_callback(s, settings, phone="+8613800138000", call_id="c1",
                                     due_at=now + timedelta(hours=5), note="改到下午",
                                     actor="agent", ticket_id=tid)  # fmt: skip
        assert created and not again and a.id == b.id and b.note == "改到下午"
        assert [t.id for t in callbacks_for(s, "agent")] == [a.id]
        assert callbacks_for(s, "other") == []  # another agent's promise is theirs
        aid = a.id
    with pytest.raises(NotFound), session_scope(engine) as s:
        finish_callback(s, aid, "done", actor="other")
    with session_scope(engine) as s:
        assert finish_callback(s, aid, "failed", actor="agent").status == "failed"
    with pytest.raises(Conflict), session_scope(engine) as s:
        finish_callback(s, aid, "done", actor="agent")
    assert events(engine, tid, "callback_failed")
