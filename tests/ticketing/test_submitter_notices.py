"""What the submitter is told after acceptance (ticketing.submitter_notices) and what the public
view shows (ticketing.portal_view): resolution with the reply and a rating link, an approved
extension with the new deadline and why, 重办 with the new deadline, nothing on a return to the
dispatcher; summary mode; mainland mobiles only; no phone numbers in logs."""

from __future__ import annotations

import re

import structlog
import yaml
from _loop_helpers import make_ticket, seed_departments
from sqlmodel import col, select

from config.database import session_scope
from config.loader import DEFAULTS_DIR
from ticketing import (
    Notice,
    OutboxMessage,
    Ticket,
    TicketEvent,
    accept,
    approve_summary,
    decide_extension,
    dispatch_to_departments,
    evaluate,
    notice_for_evaluation,
    public_view,
    reply,
    request_extension,
    return_suborder,
)

PHONE = "+8613812341234"


def _world(engine, settings, phone: str | None = PHONE) -> int:
    seed_departments(engine, settings)
    tid = make_ticket(engine, settings)
    with session_scope(engine) as s:
        t = s.get(Ticket, tid)
        t.submitter_phone = phone
        s.add(t)
    return tid


def _dispatch(engine, settings, tid: int, codes: list[str]) -> list[int]:
    with session_scope(engine) as s:
        subs = dispatch_to_departments(
            s, settings, s.get(Ticket, tid), codes, actor="disp", instructions="内部：不对外"
        )
        ids = [so.id for so in subs]
    for sid in ids:
        with session_scope(engine) as s:
            accept(s, settings, sid, actor="h")
    return ids


def _sms(engine, tid: int, kind: str | None = None) -> list[OutboxMessage]:
    q = select(OutboxMessage).where(OutboxMessage.ticket_id == tid)
    if kind:
        q = q.where(OutboxMessage.kind == kind)
    with session_scope(engine, read_only=True) as s:
        return list(s.exec(q.order_by(col(OutboxMessage.id))))


def _reply(engine, settings, sid: int, text: str) -> None:
    with session_scope(engine) as s:
        reply(s, settings, sid, actor="h", text=text)


def test_resolution_texts_every_reply_and_a_working_single_purpose_rating_link(engine, settings):
    tid = _world(engine, settings)
    a, b = _dispatch(engine, settings, tid, ["ZJJ", "ZRZY"])
    _reply(engine, settings, a, "施工许可证已核发。")
    assert _sms(engine, tid, "resolved") == []  # not resolved until both replied
    _reply(engine, settings, b, "用地手续已补正。")
    (sms,) = _sms(engine, tid, "resolved")
    assert "住房和城乡建设局：施工许可证已核发" in sms.body
    assert "自然资源和规划局：用地手续已补正" in sms.body
    token = re.search(r"/portal/rate/[^?]+\?token=(\S+)", sms.body).group(1)
    with session_scope(engine, read_only=True) as s:
        t = s.get(Ticket, tid)
        notice = s.exec(select(Notice).where(Notice.kind == "resolution")).one()
        assert token not in notice.body and "[已隐去]" in notice.body  # staff see it redacted
        assert notice.sent_body == sms.body
        assert notice_for_evaluation(s, t, token) is not None
        # the same token confirms nothing
        assert notice.confirm_token != notice.evaluation_token
        told = s.exec(select(TicketEvent).where(TicketEvent.action == "submitter_told")).one()
        assert told.detail["kind"] == "resolved" and PHONE not in str(told.detail)
        view = public_view(s, settings, t)
    assert view.stage_label.startswith("已办结") and view.can_rate
    assert [r.department for r in view.replies] == ["住房和城乡建设局", "自然资源和规划局"]
    assert view.departments == ["住房和城乡建设局", "自然资源和规划局"]
    assert "内部" not in repr(view) and "disp" not in repr(view) and PHONE not in repr(view)


def test_a_long_reply_is_cut_in_the_sms_and_whole_on_the_page(engine, settings):
    tid = _world(engine, settings)
    (sid,) = _dispatch(engine, settings, tid, ["ZJJ"])
    _reply(engine, settings, sid, "答" * 900)
    (sms,) = _sms(engine, tid, "resolved")
    assert "答" * 290 in sms.body and "答" * 400 not in sms.body and "…" in sms.body
    with session_scope(engine, read_only=True) as s:
        assert public_view(s, settings, s.get(Ticket, tid)).replies[0].text == "答" * 900


def test_an_extension_that_moves_the_committed_deadline_is_told_with_its_reason(engine, settings):
    tid = _world(engine, settings)
    (sid,) = _dispatch(engine, settings, tid, ["ZJJ"])
    with session_scope(engine) as s:
        request_extension(
            s, settings, sid, actor="h", reason="需现场勘验", amount=3, unit="working_days"
        )
    assert _sms(engine, tid, "extension") == []  # asked, not approved: nothing
    with session_scope(engine) as s:
        before = s.get(Ticket, tid).deadline_at
        decide_extension(s, settings, sid, actor="disp", approve=True)
    (sms,) = _sms(engine, tid, "extension")
    assert "需现场勘验" in sms.body and "延长至" in sms.body
    with session_scope(engine, read_only=True) as s:
        t = s.get(Ticket, tid)
        view = public_view(s, settings, t)
    assert t.deadline_at > before
    from ticketing.sla import to_local

    assert to_local(settings, t.deadline_at).strftime("%Y年%m月%d日 %H:%M") in sms.body
    (ext,) = view.extensions
    assert ext.reason == "需现场勘验" and ext.deadline == t.deadline_at
    assert ext.previous_deadline == before and ext.department == "住房和城乡建设局"


def test_a_rejected_extension_or_a_return_to_the_dispatcher_tells_nothing(engine, settings):
    tid = _world(engine, settings)
    (sid,) = _dispatch(engine, settings, tid, ["ZJJ"])
    with session_scope(engine) as s:
        request_extension(
            s, settings, sid, actor="h", reason="人手不足", amount=1, unit="working_days"
        )
    with session_scope(engine) as s:
        decide_extension(s, settings, sid, actor="disp", approve=False)
    with session_scope(engine) as s:
        return_suborder(s, settings, sid, actor="h", reason="不属于本部门职责")
    with session_scope(engine, read_only=True) as s:
        assert s.get(Ticket, tid).status == "pending_dispatch"
    assert _sms(engine, tid) == []


def test_reopen_tells_the_new_deadline(engine, settings):
    tid = _world(engine, settings)
    (sid,) = _dispatch(engine, settings, tid, ["ZJJ"])
    _reply(engine, settings, sid, "已处理。")
    with session_scope(engine) as s:
        evaluate(
            s, settings, s.get(Ticket, tid), process="不满意", timeliness="满意",
            result="不满意", comment="申请重办：没解决", actor="public",
        )  # fmt: skip
    (sms,) = _sms(engine, tid, "reopened")
    with session_scope(engine, read_only=True) as s:
        t = s.get(Ticket, tid)
        view = public_view(s, settings, t)
    from ticketing.sla import to_local

    assert to_local(settings, t.deadline_at).strftime("%Y年%m月%d日 %H:%M") in sms.body
    assert view.stage_label.startswith("重办") and view.reopen_count == 1
    assert view.replies == []  # the new round has no reply yet


def test_a_number_that_is_not_a_mainland_mobile_gets_no_sms_but_the_event(engine, settings):
    tid = _world(engine, settings, phone="+867155123456")  # a landline
    (sid,) = _dispatch(engine, settings, tid, ["ZJJ"])
    _reply(engine, settings, sid, "已处理。")
    assert _sms(engine, tid) == []
    with session_scope(engine, read_only=True) as s:
        told = s.exec(select(TicketEvent).where(TicketEvent.action == "submitter_told")).one()
    assert told.detail["sms_skipped"] == "not_mainland_mobile"


def test_summary_mode_waits_for_the_dispatchers_summary(engine, settings, tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    notices = yaml.safe_load((DEFAULTS_DIR / "notices.yaml").read_text("utf-8"))
    notices["resolution_reply"] = "summary"
    (cfg / "notices.yaml").write_text(yaml.safe_dump(notices, allow_unicode=True), "utf-8")
    st = settings.model_copy(update={"config_dir": cfg})
    tid = _world(engine, st)
    (sid,) = _dispatch(engine, st, tid, ["ZJJ"])
    _reply(engine, st, sid, "经核查，企业反映的问题属实，已责令整改（内部：涉及某科长）。")
    assert _sms(engine, tid) == []
    with session_scope(engine, read_only=True) as s:
        view = public_view(s, st, s.get(Ticket, tid))
    assert view.awaiting_summary and view.replies == [] and "某科长" not in repr(view)
    with session_scope(engine) as s:
        approve_summary(s, st, s.get(Ticket, tid), "您反映的问题已核实并责令整改。", actor="disp")
    (sms,) = _sms(engine, tid, "resolved")
    assert "已核实并责令整改" in sms.body and "某科长" not in sms.body
    with session_scope(engine, read_only=True) as s:
        view = public_view(s, st, s.get(Ticket, tid))
    assert view.summary == "您反映的问题已核实并责令整改。" and not view.awaiting_summary


def test_no_phone_number_in_the_logs(engine, settings):
    with structlog.testing.capture_logs() as logs:
        tid = _world(engine, settings)
        (sid,) = _dispatch(engine, settings, tid, ["ZJJ"])
        _reply(engine, settings, sid, "已处理。")
    assert "13812341234" not in repr(logs)
    assert _sms(engine, tid, "resolved")


def test_the_submitter_may_still_rate_over_a_staff_recorded_rating(engine, settings):
    tid = _world(engine, settings)
    (sid,) = _dispatch(engine, settings, tid, ["ZJJ"])
    _reply(engine, settings, sid, "已处理。")
    with session_scope(engine) as s:
        evaluate(
            s, settings, s.get(Ticket, tid), process="满意", timeliness="满意", result="满意",
            actor="agent1", source="staff", channel="callback",
        )  # fmt: skip
    with session_scope(engine, read_only=True) as s:
        view = public_view(s, settings, s.get(Ticket, tid))
    assert view.status == "closed" and view.can_rate and not view.rated
    with session_scope(engine) as s:
        evaluate(
            s, settings, s.get(Ticket, tid), process="满意", timeliness="基本满意",
            result="满意", actor="public",
        )  # fmt: skip
    with session_scope(engine, read_only=True) as s:
        view = public_view(s, settings, s.get(Ticket, tid))
    assert view.rated and not view.can_rate
