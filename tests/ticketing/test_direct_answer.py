"""直接答复 on SQLite and PostgreSQL: a consultation answered at first contact is a numbered ticket
closed at intake (no sub-order, no deadline, answer SMS instead of the 受理告知), rated like any
other; 不满意 turns it into a dispatched ticket. And the first-contact figures."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from _loop_helpers import make_ticket
from kb_helpers import seed_store
from sqlmodel import select

import ticketing.dispatch as d
from config.database import session_scope
from config.settings import DEFAULTS_DIR
from ticketing.direct_answer import answer_at_intake, answer_waiting, first_contact_figures
from ticketing.errors import Conflict, InvalidInput
from ticketing.evaluation import evaluate
from ticketing.knowledge import DirectAnswer, KbArticle, log_search
from ticketing.models import Notice, OutboxMessage, SubOrder, Ticket, TicketEvent, utcnow
from ticketing.notices import token_digest
from ticketing.queries import enterprise_file
from ticketing.schemas import TicketIn

USCC = "91350100M000100Y43"


@pytest.fixture
def world(engine, settings):
    seed_store(engine, settings)
    return engine, settings


def _article(engine, key: str) -> int:
    with session_scope(engine, read_only=True) as s:
        return s.exec(select(KbArticle.id).where(KbArticle.seed_key == key)).one()


def _intake(engine, settings, *, content="咨询个体户小吃店开办需要哪些材料", call_id="c-1", **kw):
    data = TicketIn(
        channel="hotline",
        content=content,
        submitter_phone="13812345678",
        enterprise_uscc=USCC,
        channel_data={"call_id": call_id},
    )
    with session_scope(engine) as s:
        t = answer_at_intake(
            s,
            settings,
            data,
            article_ids=kw.pop("article_ids", [_article(engine, "lic-002")]),
            note=kw.pop("note", "先办个体户执照，再办食品经营许可证，可一次申请"),
            actor="agent1",
        )
        return t.id, t.number


def _rate(engine, settings, tid, rating):
    with session_scope(engine) as s:
        evaluate(
            s,
            settings,
            s.get(Ticket, tid),
            process=rating,
            timeliness=rating,
            result=rating,
            actor="public",
        )


def test_answer_at_intake_closes_without_dispatch_and_texts_the_answer(world):
    engine, settings = world
    tid, number = _intake(engine, settings)
    with session_scope(engine, read_only=True) as s:
        t = s.get(Ticket, tid)
        assert number and t.status == "resolved" and t.dispatch_mode == "direct"
        assert t.deadline_at is None and t.sla_basis is None and t.resolved_at is not None
        assert s.exec(select(SubOrder).where(SubOrder.ticket_id == tid)).all() == []
        assert t.caller_id is not None
        _, history = enterprise_file(s, USCC)
        assert tid in [x.id for x in history]
        da = s.exec(select(DirectAnswer).where(DirectAnswer.ticket_id == tid)).one()
        assert da.article_ids == [_article(engine, "lic-002")] and da.answered_by == "agent1"
        notices = s.exec(select(Notice).where(Notice.ticket_id == tid)).all()
        assert [n.kind for n in notices] == ["direct_answer"]  # no 受理告知
        sms = s.exec(select(OutboxMessage).where(OutboxMessage.ticket_id == tid)).all()
        assert [m.kind for m in sms] == ["direct_answer"]
        # the rating token travels in the SMS only: stored as its digest, redacted for staff
        token = sms[0].body.split("token=", 1)[1].split()[0]
        assert number in sms[0].body and token_digest(token) == notices[0].evaluation_token
        assert token not in notices[0].body and notices[0].sent_body == sms[0].body
        assert "食品经营许可证" in sms[0].body
        actions = [
            e.action for e in s.exec(select(TicketEvent).where(TicketEvent.ticket_id == tid))
        ]
        assert actions[:2] == ["created", "direct_answered"]
        assert "dispatched" not in actions


def test_without_answer_sms_configured_the_acceptance_notice_is_sent(world, settings, tmp_path):
    engine, _ = world
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    notices = yaml.safe_load((DEFAULTS_DIR / "notices.yaml").read_text("utf-8"))
    notices.pop("direct_answer_sms")
    (cfg / "notices.yaml").write_text(yaml.safe_dump(notices, allow_unicode=True), "utf-8")
    tid, _ = _intake(engine, settings.model_copy(update={"config_dir": cfg}))
    with session_scope(engine, read_only=True) as s:
        kinds = [n.kind for n in s.exec(select(Notice).where(Notice.ticket_id == tid))]
        assert kinds == ["acceptance"]
        assert s.get(Ticket, tid).status == "resolved"


def test_satisfied_rating_closes_it(world):
    engine, settings = world
    tid, _ = _intake(engine, settings)
    _rate(engine, settings, tid, "满意")
    with session_scope(engine, read_only=True) as s:
        assert s.get(Ticket, tid).status == "closed"
        da = s.exec(select(DirectAnswer).where(DirectAnswer.ticket_id == tid)).one()
        assert da.outcome == "satisfied" and da.dispatched_at is None


def test_unsatisfied_turns_it_into_a_dispatched_ticket(world):
    engine, settings = world
    tid, _ = _intake(
        engine,
        settings,
        content="公司给员工补缴社保的手续怎么办",
        article_ids=[_article(engine, "si-001")],
    )
    _rate(engine, settings, tid, "不满意")
    with session_scope(engine, read_only=True) as s:
        t = s.get(Ticket, tid)
        assert t.status == "dispatched" and t.round == 2 and t.deadline_at is not None
        subs = s.exec(select(SubOrder).where(SubOrder.ticket_id == tid)).all()
        assert [so.department_code for so in subs] == ["RSJ"]  # routing rule social-insurance
        da = s.exec(select(DirectAnswer).where(DirectAnswer.ticket_id == tid)).one()
        assert da.outcome == "unsatisfied" and da.dispatched_at is not None


def test_unsatisfied_without_a_department_waits_for_a_dispatcher(world):
    engine, settings = world
    tid, _ = _intake(
        engine, settings, content="想了解一下政策", note="已告知政策查询渠道", article_ids=[]
    )
    with session_scope(engine) as s:
        t = s.get(Ticket, tid)
        t.suggested_department, t.classifier_confidence = None, None
    _rate(engine, settings, tid, "不满意")
    with session_scope(engine, read_only=True) as s:
        assert s.get(Ticket, tid).status == "reopened"
        last = s.exec(
            select(TicketEvent)
            .where(
                TicketEvent.ticket_id == tid,
                TicketEvent.action != "revisit_task_created",  # the 回访 of a 不满意 (#11)
            )
            .order_by(TicketEvent.id.desc())
        ).first()
        assert last.action == "manual_dispatch_required"


def test_dispatcher_answers_a_waiting_consultation(world):
    engine, settings = world
    tid = make_ticket(engine, settings, content="咨询公积金怎么提取", category="complaint")
    with session_scope(engine) as s:
        answer_waiting(
            s,
            settings,
            s.get(Ticket, tid),
            article_ids=[_article(engine, "gjj-002")],
            note="",
            actor="disp1",
        )
    with session_scope(engine, read_only=True) as s:
        t = s.get(Ticket, tid)
        assert (t.status, t.dispatch_mode, t.deadline_at) == ("resolved", "direct", None)
    other = make_ticket(engine, settings, content="路灯坏了")
    with session_scope(engine) as s:
        d.dispatch(s, settings, s.get(Ticket, other), ["CGJ"], actor="disp1")
    with session_scope(engine) as s, pytest.raises(Conflict):
        answer_waiting(
            s, settings, s.get(Ticket, other), article_ids=[], note="已答复", actor="disp1"
        )


def test_repeated_call_id_answers_the_calls_ticket_once(world):
    engine, settings = world
    _intake(engine, settings, call_id="same-call")
    with pytest.raises(Conflict):
        _intake(engine, settings, call_id="same-call")
    with session_scope(engine, read_only=True) as s:
        assert len(s.exec(select(DirectAnswer)).all()) == 1


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"article_ids": [], "note": " "}, "article_ids"),
        ({"article_ids": [999999]}, "article_ids"),
        ({"note": "长" * 501}, "note"),
    ],
)
def test_bad_answers_are_refused_and_leave_nothing(world, kw, field):
    engine, settings = world
    with pytest.raises(InvalidInput) as e:
        _intake(engine, settings, call_id=f"bad-{field}", **kw)
    assert e.value.details["field"] == field
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(Ticket)).all() == []


def test_an_unpublished_article_cannot_be_the_answer(world):
    engine, settings = world
    aid = _article(engine, "tax-001")
    with session_scope(engine) as s:
        s.get(KbArticle, aid).status = "draft"
    with pytest.raises(InvalidInput):
        _intake(engine, settings, article_ids=[aid])


def test_first_contact_figures(world):
    engine, settings = world
    since = utcnow() - timedelta(minutes=1)
    a, _ = _intake(engine, settings, call_id="f1")
    b, _ = _intake(engine, settings, call_id="f2", content="公司给员工补缴社保的手续怎么办")
    make_ticket(engine, settings, content="政策咨询", category="complaint")  # not answered
    _rate(engine, settings, a, "满意")
    _rate(engine, settings, b, "不满意")  # → dispatched: not closed at first contact
    with session_scope(engine) as s:
        log_search(s, "火星补贴", [], public=False)
    with session_scope(engine, read_only=True) as s:
        f = first_contact_figures(s, since, utcnow() + timedelta(minutes=1))
    assert f["consultations"] == 3 and f["direct_answers"] == 2
    assert f["direct_answers_dispatched"] == 1
    assert f["direct_answer_rate"] == round(1 / 3, 4)
    assert f["direct_answer_satisfaction"] == 0.5
    assert f["searches"] == 1 and f["knowledge_hit_rate"] == 0.0
    assert f["top_unanswered"] == [{"question": "火星补贴", "count": 1}]
