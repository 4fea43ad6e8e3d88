"""The one intake path: every channel, normalisation, upserts, dedupe, and bad input writing nothing."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import func, select

from config.database import session_scope
from config.queues import get_queue
from ticketing.departments import sync_departments
from ticketing.errors import InvalidInput
from ticketing.events import history
from ticketing.intake import CHANNEL_RULES, derive_title, submit
from ticketing.models import (
    Caller,
    Channel,
    Enterprise,
    Notice,
    OutboxMessage,
    SubOrder,
    Ticket,
    TicketCounter,
    TicketEvent,
)
from ticketing.schemas import TicketIn
from ticketing.uscc import build_uscc

USCC = build_uscc("MA4ABCDE")
TABLES = (Ticket, Caller, Enterprise, TicketEvent, Notice, OutboxMessage, TicketCounter, SubOrder)

VALID_CHANNEL_DATA = {
    "hotline": {"call_id": "1732500000.101", "ivr_path": ["1", "2"]},
    "voicemail": {"call_id": "1732500000.202", "recording": "vm/202.wav"},
    "web": {},
    "mobile": {"app_version": "2.1.0"},
    "window": {"window_no": "A3"},
    "opinion": {"source_url": "https://weibo.com/123/abc", "platform": "微博"},
    "survey": {"visit_id": "DY-2026-11-001"},
}


def make(channel="web", **kw) -> dict:
    return {
        "channel": channel,
        "content": "我们公司申请的稳岗补贴三个月了还没到账，请帮忙催一下。",
        "category": "enterprise",
        "urgency": "general",
        "channel_data": dict(VALID_CHANNEL_DATA[channel]),
        "send_notice": False,
        **kw,
    }


def counts(session) -> dict[str, int]:
    return {m.__name__: session.exec(select(func.count()).select_from(m)).one() for m in TABLES}


def test_rules_cover_every_channel():
    assert set(CHANNEL_RULES) == set(Channel)


@pytest.mark.parametrize("channel", [c.value for c in Channel])
def test_every_channel(engine, settings, channel):
    with session_scope(engine) as s:
        t = submit(s, TicketIn(**make(channel)), settings=settings, actor="agent7")
    assert t.id and t.channel == channel
    assert t.number.startswith(f"{settings.ticket_prefix}-") and len(t.number) == 19
    assert t.deadline_at > t.created_at and t.sla_basis == "5 working_days"
    assert t.status in ("pending_dispatch", "dispatched")
    with session_scope(engine, read_only=True) as s:
        created = history(s, t.id)[0]
        assert created.action == "created" and created.actor == "agent7"
        assert created.detail["channel"] == channel and created.detail["number"] == t.number
        assert s.get(Ticket, t.id).channel_data == t.channel_data


def test_phone_and_uscc_normalised_and_upserted(engine, settings):
    lower_full_width = "".join(chr(ord(c) + 0xFEE0) for c in USCC.lower())
    with session_scope(engine) as s:
        a = submit(
            s,
            TicketIn(
                **make(),
                submitter_phone="138 1234 5678",
                submitter_name="张三",
                enterprise_uscc=lower_full_width,
            ),
            settings=settings,
            actor="web",
        )
    with session_scope(engine) as s:
        b = submit(
            s,
            TicketIn(
                **make("hotline"),
                submitter_phone="+86-138-1234-5678",
                enterprise_uscc=USCC,
                enterprise_name="赤壁市某某科技有限公司",
            ),
            settings=settings,
            actor="agent1",
        )
    with session_scope(engine, read_only=True) as s:
        callers = s.exec(select(Caller)).all()
        assert [(c.phone, c.name) for c in callers] == [("+8613812345678", "张三")]
        ents = s.exec(select(Enterprise)).all()
        assert [(e.uscc, e.name) for e in ents] == [(USCC, "赤壁市某某科技有限公司")]
        assert a.caller_id == b.caller_id == callers[0].id
        assert a.enterprise_id == b.enterprise_id == ents[0].id
        assert a.submitter_phone == "+8613812345678"
    with session_scope(engine) as s:  # a later intake renames the enterprise
        submit(
            s,
            TicketIn(**make(), enterprise_uscc=USCC, enterprise_name="赤壁市某某科技股份有限公司"),
            settings=settings,
            actor="web",
        )
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(Enterprise.name)).one() == "赤壁市某某科技股份有限公司"


def test_enterprise_name_without_code_is_kept(engine, settings):
    with session_scope(engine) as s:
        t = submit(s, TicketIn(**make(), enterprise_name="某小吃店"), settings=settings, actor="w")
    assert t.enterprise_id is None and t.channel_data["enterprise_name"] == "某小吃店"


def test_title_derived_and_control_chars_removed(engine, settings):
    content = "\n  营业执照年报逾期了怎么补报？上周提交了没反应。\x00\x07"
    with session_scope(engine) as s:
        t = submit(s, TicketIn(**make(content=content)), settings=settings, actor="w")
    assert t.title == "营业执照年报逾期了怎么补报"
    assert "\x00" not in t.content and t.content.endswith("没反应。")
    assert derive_title("一" * 80) == "一" * 30 + "…"
    assert derive_title("短。后面还有很多内容") == "短。后面还有很多内容"


def test_classifier_fills_missing_category_and_urgency(engine, settings):
    pytest.importorskip("ticketing.classifier")
    data = make(content="公司拖欠工资三个月了，三百多个工人今天围在厂门口，情况很紧急")
    data.pop("category")
    data.pop("urgency")
    with session_scope(engine) as s:
        t = submit(s, TicketIn(**data), settings=settings, actor="agent1")
    assert t.category in ("enterprise", "government", "complaint")
    assert t.urgency in ("general", "urgent", "critical")
    assert t.classifier_confidence is not None and 0 <= t.classifier_confidence <= 1
    with session_scope(engine, read_only=True) as s:
        assert history(s, t.id)[0].detail["classified"] is True


def test_explicit_values_win_over_the_classifier(engine, settings):
    data = make(content="营业执照经营范围变更怎么办理", category="complaint", urgency="critical")
    with session_scope(engine) as s:
        t = submit(s, TicketIn(**data), settings=settings, actor="agent1")
    assert (t.category, t.urgency, t.sla_basis) == ("complaint", "critical", "12 hours")


def test_explicit_departments_dispatch_in_parallel(engine, settings):
    pytest.importorskip("ticketing.dispatch")
    with session_scope(engine) as s:
        sync_departments(s, settings)
    with session_scope(engine) as s:
        t = submit(
            s, TicketIn(**make(departments=["SWJ", "RSJ"])), settings=settings, actor="disp1"
        )
    with session_scope(engine, read_only=True) as s:
        subs = s.exec(select(SubOrder).where(SubOrder.ticket_id == t.id)).all()
        assert sorted(so.department_code for so in subs) == ["RSJ", "SWJ"]
        assert s.get(Ticket, t.id).status == "dispatched"


def test_acceptance_notice_on_intake(engine, settings):
    with session_scope(engine) as s:
        t = submit(
            s,
            TicketIn(**{**make(), "send_notice": True}, submitter_phone="13812345678"),
            settings=settings,
            actor="web",
        )
    with session_scope(engine, read_only=True) as s:
        notice = s.exec(select(Notice).where(Notice.ticket_id == t.id)).one()
        assert t.number in notice.body
        sms = s.exec(select(OutboxMessage).where(OutboxMessage.ticket_id == t.id)).one()
        assert sms.status == "pending" and sms.kind == "acceptance"
    queue = get_queue(settings, "notify")
    assert queue.count == 1  # enqueued after commit; no worker here
    queue.empty()  # also deletes the job hashes, which live outside the namespace


def test_hotline_call_id_is_idempotent(engine, settings):
    with session_scope(engine) as s:
        first = submit(s, TicketIn(**make("hotline")), settings=settings, actor="bridge")
    with session_scope(engine) as s:
        again = submit(s, TicketIn(**make("hotline")), settings=settings, actor="bridge")
    vm = make("voicemail")
    vm["channel_data"]["call_id"] = VALID_CHANNEL_DATA["hotline"]["call_id"]
    with session_scope(engine) as s:  # the same call ending in voicemail
        from_vm = submit(s, TicketIn(**vm), settings=settings, actor="bridge")
    other = make("hotline")
    other["channel_data"]["call_id"] = "1732500000.999"
    with session_scope(engine) as s:
        second_call = submit(s, TicketIn(**other), settings=settings, actor="bridge")
    assert first.id == again.id == from_vm.id != second_call.id
    with session_scope(engine, read_only=True) as s:
        assert counts(s)["Ticket"] == 2 and counts(s)["TicketEvent"] >= 2


def test_concurrent_retries_of_one_call_make_one_ticket(engine, settings):
    ids: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(5)

    def work():
        try:
            barrier.wait()
            with session_scope(engine) as s:
                ids.append(submit(s, TicketIn(**make("hotline")), settings=settings, actor="rq").id)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(ids)) == 1
    with session_scope(engine, read_only=True) as s:
        assert counts(s)["Ticket"] == 1


def _bad(**overrides) -> dict:
    data = make()
    for k, v in overrides.items():
        if k == "channel" and "channel_data" not in overrides and v in VALID_CHANNEL_DATA:
            data["channel_data"] = {}
        data[k] = v
    return data


BAD_INPUTS = {
    "bad uscc check digit": _bad(enterprise_uscc=USCC[:17] + ("0" if USCC[17] != "0" else "1")),
    "uscc wrong length": _bad(enterprise_uscc="91421281MA4ABC"),
    "junk phone": _bad(submitter_phone="call me maybe"),
    "short phone": _bad(submitter_phone="12345"),
    "empty content": _bad(content=""),
    "blank content": _bad(content="  \n\t "),
    "control chars only": _bad(content="\x00\x01"),
    "oversized content": _bad(content="长" * 20001),
    "oversized title": _bad(title="题" * 201),
    "oversized name": _bad(submitter_name="名" * 101),
    "unknown channel": _bad(channel="fax"),
    "unknown field": _bad(priority="high"),
    "hotline without call_id": _bad(channel="hotline"),
    "voicemail without call_id": _bad(channel="voicemail", channel_data={"recording": "x.wav"}),
    "call_id not a scalar": _bad(channel="hotline", channel_data={"call_id": {"a": 1}}),
    "call_id too long": _bad(channel="hotline", channel_data={"call_id": "9" * 65}),
    "window without window_no or operator": _bad(channel="window"),
    "opinion without url": _bad(channel="opinion", channel_data={"platform": "微博"}),
    "opinion with non-http url": _bad(
        channel="opinion", channel_data={"source_url": "javascript:alert(1)"}
    ),
    "survey without id": _bad(channel="survey", channel_data={"note": "走访"}),
    "channel_data too large": _bad(channel_data={"blob": "x" * 17000}),
    "channel_data too many keys": _bad(channel_data={f"k{i}": i for i in range(51)}),
    "unknown department": _bad(departments=["NOPE"]),
    "bad category": _bad(category="sports"),
    "bad urgency": _bad(urgency="whenever"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raises_and_writes_nothing(engine, settings, name):
    with session_scope(engine) as s:
        before = counts(s)
    with session_scope(engine) as s:  # even if the caller goes on to commit …
        with pytest.raises(InvalidInput) as ei:
            submit(s, BAD_INPUTS[name], settings=settings, actor="tester")
        assert ei.value.status == 422 and ei.value.message
        assert counts(s) == before  # … nothing was added to the session
    with session_scope(engine, read_only=True) as s:
        assert counts(s) == before


def test_validation_bypass_is_caught(engine, settings):
    """model_construct / assignment skip pydantic; submit validates again."""
    data = TicketIn(**make())
    data.content = "长" * 20001
    with session_scope(engine) as s, pytest.raises(InvalidInput) as ei:
        submit(s, data, settings=settings, actor="tester")
    assert ei.value.details["field"] == "content"
    constructed = TicketIn.model_construct(channel="web", content="   ", send_notice=False)
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        submit(s, constructed, settings=settings, actor="tester")
    with session_scope(engine, read_only=True) as s:
        assert counts(s)["Ticket"] == 0


def test_bad_actor(engine, settings):
    with session_scope(engine) as s, pytest.raises(InvalidInput):
        submit(s, make(), settings=settings, actor="")


def test_longest_content_and_messy_keywords_still_classify(engine, settings):
    pytest.importorskip("ticketing.classifier")
    data = make(content="企业反映" + "营业执照办理进度慢。" * 1999, title="题" * 200)
    data.pop("category")
    data["channel_data"] = {"keywords": ["营业执照", 3, "", "长" * 80, *["社保"] * 100]}
    assert len(data["content"]) == 19994
    with session_scope(engine) as s:
        t = submit(s, TicketIn(**data), settings=settings, actor="asr")
    assert t.id and t.category in ("enterprise", "government", "complaint")
