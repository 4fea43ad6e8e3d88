"""The proactive policy push (issue #12 §20–21): runs, no double push, resumption, opt-out, opens,
the job on publish, profile import, ticket links."""

from __future__ import annotations

import io
import threading
from collections import Counter

import pytest
from policy_helpers import enterprise, policy, setup, uscc
from rq import SimpleWorker
from rq.job import Job
from sqlmodel import col, func, select

from config.database import make_engine, session_scope
from config.queues import get_queue
from ticketing.knowledge.models import (
    ArticleStatus,
    KbArticle,
    PolicyPush,
    PolicyPushOpen,
    PolicyPushRun,
)
from ticketing.knowledge.store import SYSTEM, transition
from ticketing.models import Enterprise, OutboxMessage
from ticketing.policy_push import (
    PUSH_PATH,
    link_ticket_policy,
    message_pushes,
    opt_out,
    policy_figures,
    push_by_token,
    record_matches,
    record_open,
    request_enterprise_push,
    request_policy_push,
    request_push_of_all_policies,
    run_push,
    ticket_policies,
)
from ticketing.profiles import import_profiles, save_profile, validate_profile


@pytest.fixture
def queue(settings):
    q = get_queue(settings, "notify")
    yield q
    ids = set(q.job_ids)
    for reg in (q.finished_job_registry, q.failed_job_registry, q.started_job_registry):
        ids.update(reg.get_job_ids())
    for jid in ids:
        if q.connection.exists(f"rq:job:{jid}"):
            Job.fetch(jid, connection=q.connection).delete()


def _run(engine, settings, article_id: int) -> int:
    with session_scope(engine) as s:
        return request_policy_push(s, settings, article_id, "admin").id or 0


def _outbox(engine) -> list[OutboxMessage]:
    with session_scope(engine, read_only=True) as s:
        return list(
            s.exec(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "policy_push")
                .order_by(col(OutboxMessage.id))
            )
        )


def _pushes(engine) -> list[PolicyPush]:
    with session_scope(engine, read_only=True) as s:
        return list(s.exec(select(PolicyPush).order_by(col(PolicyPush.id))))


def test_push_reaches_fitting_enterprises_once(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        fit = enterprise(s, settings, 1, industry_code="C1311")
        no_mobile = enterprise(s, settings, 2, industry_code="C1311", push_mobile="")
        landline = enterprise(s, settings, 3, industry_code="C13", push_mobile="+862788888888")
        enterprise(s, settings, 4, industry_code="F5211")  # does not fit
        out = enterprise(s, settings, 5, industry_code="C1311", push_opt_out=True)
        p = policy(s, settings, industries=["C13"], apply_until="2099-06-30")
        pid = p.id
    rid = _run(engine, settings, pid)
    r = run_push(engine, settings, rid)
    assert (r.matched, r.sent, r.skipped, r.finished) == (3, 1, 2, True)
    pushes = {x.enterprise_id: x for x in _pushes(engine)}
    assert set(pushes) == {fit.id, no_mobile.id, landline.id}  # the opted-out one: no row at all
    assert pushes[fit.id].status == "sent" and pushes[fit.id].token_digest
    assert pushes[no_mobile.id].skip_reason == "no_mobile"
    assert pushes[landline.id].skip_reason == "no_mobile"
    assert out.id not in pushes
    [sms] = _outbox(engine)
    assert sms.to_phone == "+8613800000001"
    assert "《测试政策：中小微企业稳岗补贴》" in sms.body and "申报截止2099-06-30" in sms.body
    assert f"{settings.public_base_url}{PUSH_PATH}" in sms.body and "/optout" in sms.body
    # the same run again, and a fresh run: nothing new (the unique row is the guard)
    assert run_push(engine, settings, rid).sent == 0
    again = run_push(engine, settings, _run(engine, settings, pid))
    assert (again.matched, again.sent) == (0, 0)
    assert len(_outbox(engine)) == 1
    with session_scope(engine, read_only=True) as s:
        fig = policy_figures(s, pid)
        run = s.get(PolicyPushRun, rid)
    assert (fig.matched, fig.sent, fig.skipped, fig.pending, fig.runs) == (3, 1, 2, 0, 2)
    assert run.finished_at is not None and run.sent == 1


def test_two_concurrent_runs_never_push_twice(engine, settings, db_url):
    setup(engine, settings)
    with session_scope(engine) as s:
        for n in range(1, 61):
            enterprise(s, settings, n)
        pid = policy(s, settings).id
    runs = [_run(engine, settings, pid), _run(engine, settings, pid)]
    errors: list[BaseException] = []

    def work(rid: int) -> None:
        eng = make_engine(db_url)
        try:
            run_push(eng, settings, rid, batch_size=5)
        except BaseException as e:
            errors.append(e)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=work, args=(rid,)) for rid in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    phones = Counter(m.to_phone for m in _outbox(engine))
    assert len(phones) == 60 and set(phones.values()) == {1}
    pushes = _pushes(engine)
    assert len(pushes) == 60 and {p.status for p in pushes} == {"sent"}
    assert len({p.outbox_id for p in pushes}) == 60


class Crash(Exception):
    pass


def test_crash_mid_batch_resumes_without_duplicates(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        for n in range(1, 24):
            enterprise(s, settings, n)
        pid = policy(s, settings).id
    rid = _run(engine, settings, pid)
    queued = []

    def crash_on_the_eighth(push_id: int) -> None:
        queued.append(push_id)
        if len(queued) == 8:  # the second batch of 5, half done
            raise Crash

    with pytest.raises(Crash):
        run_push(engine, settings, rid, batch_size=5, on_queued=crash_on_the_eighth)
    # the first batch stands, the interrupted one left no trace
    assert len(_outbox(engine)) == 5
    assert Counter(p.status for p in _pushes(engine)) == {"sent": 5, "pending": 18}
    with session_scope(engine, read_only=True) as s:
        assert s.get(PolicyPushRun, rid).finished_at is None
    r = run_push(engine, settings, rid, batch_size=5)  # the retry (or the scheduler's requeue)
    assert (r.sent, r.finished) == (18, True)
    phones = Counter(m.to_phone for m in _outbox(engine))
    assert len(phones) == 23 and set(phones.values()) == {1}


def test_opt_out_stops_pushes_and_open_is_logged(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        e1 = enterprise(s, settings, 1)
        e2 = enterprise(s, settings, 2)
        p1 = policy(s, settings).id
        p2 = policy(s, settings).id
    run_push(engine, settings, _run(engine, settings, p1))
    token = _outbox(engine)[0].body.split(PUSH_PATH)[1].split()[0]
    with session_scope(engine) as s:
        push = push_by_token(s, token)
        assert push is not None and push.enterprise_id == e1.id and push.article_id == p1
        record_open(s, push)
        record_open(s, push)
        assert push_by_token(s, token + "x") is None
        assert push_by_token(s, "") is None
    with session_scope(engine, read_only=True) as s:
        push = s.get(PolicyPush, push.id)
        assert push.open_count == 2 and push.first_opened_at is not None
        assert s.exec(select(func.count()).select_from(PolicyPushOpen)).one() == 2
        assert policy_figures(s, p1).opened == 1
    with session_scope(engine) as s:
        opt_out(s, e1.id)
    r = run_push(engine, settings, _run(engine, settings, p2))
    assert r.sent == 1
    assert [m.to_phone for m in _outbox(engine)][-1] == f"+86138{2:08d}"
    with session_scope(engine, read_only=True) as s:
        assert s.get(Enterprise, e1.id).push_opt_out_at is not None
        rows = s.exec(select(PolicyPush).where(PolicyPush.article_id == p2)).all()
        assert [x.enterprise_id for x in rows] == [e2.id]


def test_opt_out_after_matching_skips_pending(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        e = enterprise(s, settings, 1)
        pid = policy(s, settings).id
    rid = _run(engine, settings, pid)
    with session_scope(engine) as s:
        record_matches(s, rid, s.get(KbArticle, pid), None)
        opt_out(s, e.id)
    assert run_push(engine, settings, rid).sent == 0
    assert _outbox(engine) == []
    assert [(p.status, p.skip_reason) for p in _pushes(engine)] == [("skipped", "opted_out")]


def test_expired_or_unpublished_policy_cannot_be_pushed(engine, settings):
    from ticketing.errors import Conflict

    setup(engine, settings)
    with session_scope(engine) as s:
        enterprise(s, settings, 1)
        draft = policy(s, settings, status=ArticleStatus.draft).id
        old = policy(s, settings, expires_on="2001-01-01").id
    for pid in (draft, old):
        with pytest.raises(Conflict), session_scope(engine) as s:
            request_policy_push(s, settings, pid, "admin")


def test_publish_pushes_through_the_job_and_the_outbox(engine, settings, queue):
    setup(engine, settings)
    with session_scope(engine) as s:
        enterprise(s, settings, 1, region="车埠镇")
        enterprise(s, settings, 2, region="赤壁镇")
        pid = policy(s, settings, status=ArticleStatus.reviewed, regions=["车埠镇"]).id
    with session_scope(engine) as s:
        transition(s, pid, "publish", SYSTEM, settings=settings)
    SimpleWorker([queue], connection=queue.connection, name=f"{settings.redis_namespace}-w").work(
        burst=True
    )
    [sms] = _outbox(engine)
    assert sms.to_phone == "+8613800000001" and sms.status == "logged"  # delivered (logged outbox)
    with session_scope(engine, read_only=True) as s:
        [run] = s.exec(select(PolicyPushRun)).all()
        assert run.finished_at is not None and run.sent == 1


def test_new_enterprise_is_told_the_policies_that_fit(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        fits = policy(s, settings, industries=["F52"]).id
        policy(s, settings, industries=["C"])
        row, errors = validate_profile(
            settings,
            {
                "uscc": uscc(7),
                "name": "新开超市",
                "industry_code": "5211",
                "employees": "12",
                "revenue": "150",
                "region": "新店镇",
                "push_mobile": "13900001111",
            },
        )
        assert errors == [] and row is not None
        ent, created = save_profile(s, settings, row, "dispatcher")
        assert created and ent.size_band == "small" and ent.industry_code == "F5211"
        [run] = s.exec(select(PolicyPushRun)).all()
        assert run.enterprise_id == ent.id
        rid = run.id
    r = run_push(engine, settings, rid)
    assert (r.matched, r.sent) == (1, 1)
    assert [p.article_id for p in _pushes(engine)] == [fits]
    # a change that the matcher does not read asks nothing; one it reads asks again
    with session_scope(engine) as s:
        row, _ = validate_profile(settings, {"uscc": uscc(7), "name": "新开超市（连锁）"})
        save_profile(s, settings, row, "dispatcher")
        assert s.exec(select(func.count()).select_from(PolicyPushRun)).one() == 1
        row, _ = validate_profile(settings, {"uscc": uscc(7), "region": "车埠镇"})
        save_profile(s, settings, row, "dispatcher")
        run2 = request_enterprise_push(s, settings, ent.id, "x")
        assert run2.id and s.exec(select(func.count()).select_from(PolicyPushRun)).one() == 3


def _token(sms: OutboxMessage) -> str:
    return sms.body.split(PUSH_PATH)[1].split()[0]


def _message(engine, sms: OutboxMessage) -> list[int]:
    """The policies one SMS carried (by its link)."""
    with session_scope(engine, read_only=True) as s:
        push = push_by_token(s, _token(sms))
        assert push is not None and push.outbox_id == sms.id
        return [p.article_id for p in message_pushes(s, push)]


def test_new_enterprise_gets_one_digest_sms_then_only_what_is_new(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        fit = [policy(s, settings, title=f"惠企政策{i}", industries=["F52"]).id for i in (1, 2, 3)]
        policy(s, settings, title="工业政策", industries=["C"])  # does not fit
        e = enterprise(s, settings, 7, industry_code="F5211")
        rid = request_enterprise_push(s, settings, e.id, "dispatcher").id
    r = run_push(engine, settings, rid)
    assert (r.matched, r.sent, r.skipped) == (3, 3, 0)
    [sms] = _outbox(engine)  # one SMS, not one per policy
    assert sms.to_phone == "+8613800000007"
    assert "为您匹配到3项惠企政策" in sms.body and "/optout" in sms.body
    assert sorted(_message(engine, sms)) == sorted(fit)
    pushes = _pushes(engine)
    assert {p.outbox_id for p in pushes} == {sms.id} and {p.status for p in pushes} == {"sent"}
    assert sum(1 for p in pushes if p.token_digest) == 1  # one link for the one SMS
    # two new policies, then the enterprise's profile changes: one SMS listing only those two
    with session_scope(engine) as s:
        new = [policy(s, settings, title=f"新政策{i}").id for i in (1, 2)]
        rid = request_enterprise_push(s, settings, e.id, "dispatcher").id
    assert run_push(engine, settings, rid).sent == 2
    assert len(_outbox(engine)) == 2
    second = _outbox(engine)[-1]
    assert "为您匹配到2项惠企政策" in second.body
    assert sorted(_message(engine, second)) == sorted(new)
    # one more policy, published to everyone it fits: one SMS naming it, the policy's own text
    with session_scope(engine) as s:
        last = policy(s, settings, title="最新政策", apply_until="2099-01-31").id
    assert run_push(engine, settings, _run(engine, settings, last)).sent == 1
    third = _outbox(engine)[-1]
    assert "《最新政策》" in third.body and "申报截止2099-01-31" in third.body
    assert "为您匹配到" not in third.body and _message(engine, third) == [last]
    # nothing is ever told twice
    again = run_push(engine, settings, request_and_commit(engine, settings, e.id))
    assert (again.matched, again.sent) == (0, 0) and len(_outbox(engine)) == 3


def request_and_commit(engine, settings, enterprise_id: int) -> int:
    with session_scope(engine) as s:
        return request_enterprise_push(s, settings, enterprise_id, "x").id or 0


def test_digest_crash_mid_run_resumes_with_one_sms_each(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        for n in (1, 2, 3):
            enterprise(s, settings, n)
        pids = [policy(s, settings, title=f"政策{i}").id for i in (1, 2, 3)]
        rid = request_push_of_all_policies(s, settings, "admin").id  # as after an import
    queued = []

    def crash_on_the_second(push_id: int) -> None:
        queued.append(push_id)
        if len(queued) == 2:  # the second enterprise's SMS queued, its batch not committed
            raise Crash

    with pytest.raises(Crash):
        run_push(engine, settings, rid, batch_size=1, on_queued=crash_on_the_second)
    assert len(_outbox(engine)) == 1
    assert Counter(p.status for p in _pushes(engine)) == {"sent": 3, "pending": 6}
    r = run_push(engine, settings, rid, batch_size=1)  # the retry
    assert (r.sent, r.finished) == (6, True)
    sms = _outbox(engine)
    assert Counter(m.to_phone for m in sms) == {f"+86138{n:08d}": 1 for n in (1, 2, 3)}
    for m in sms:
        assert "为您匹配到3项惠企政策" in m.body and sorted(_message(engine, m)) == sorted(pids)
    assert run_push(engine, settings, rid).sent == 0


def test_concurrent_digest_runs_never_tell_a_policy_twice(engine, settings, db_url):
    setup(engine, settings)
    with session_scope(engine) as s:
        for n in range(1, 31):
            enterprise(s, settings, n)
        for i in (1, 2, 3):
            policy(s, settings, title=f"政策{i}")
        runs = [request_push_of_all_policies(s, settings, "admin").id for _ in (1, 2)]
    errors: list[BaseException] = []

    def work(rid: int) -> None:
        eng = make_engine(db_url)
        try:
            run_push(eng, settings, rid, batch_size=4)
        except BaseException as e:
            errors.append(e)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=work, args=(rid,)) for rid in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    pushes = _pushes(engine)
    assert len(pushes) == 90 and {p.status for p in pushes} == {"sent"}
    told = Counter((m.to_phone, aid) for m in _outbox(engine) for aid in _message(engine, m))
    assert len(told) == 90 and set(told.values()) == {1}  # every pair told, none twice


def test_digest_crash_before_commit_leaves_nothing(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        e = enterprise(s, settings, 1)
        for i in (1, 2):
            policy(s, settings, title=f"政策{i}")
        rid = request_enterprise_push(s, settings, e.id, "x").id

    def crash(push_id: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        run_push(engine, settings, rid, on_queued=crash)
    assert _outbox(engine) == [] and {p.status for p in _pushes(engine)} == {"pending"}
    assert run_push(engine, settings, rid).sent == 2
    [sms] = _outbox(engine)
    assert "为您匹配到2项惠企政策" in sms.body


def test_digest_honours_opt_out_and_mainland_mobile(engine, settings):
    setup(engine, settings)
    with session_scope(engine) as s:
        out = enterprise(s, settings, 1, push_opt_out=True)
        later = enterprise(s, settings, 2)
        landline = enterprise(s, settings, 3, push_mobile="+862788888888")
        for i in (1, 2):
            policy(s, settings, title=f"政策{i}")
        runs = [request_enterprise_push(s, settings, x.id, "x").id for x in (out, later, landline)]
    with session_scope(engine) as s:  # matched, then opted out before the send
        for a in s.exec(select(KbArticle).where(KbArticle.kind == "policy")):
            record_matches(s, runs[1], a, later.id)
        opt_out(s, later.id)
    for rid in runs:
        run_push(engine, settings, rid)
    assert _outbox(engine) == []
    got = Counter((p.enterprise_id, p.status, p.skip_reason) for p in _pushes(engine))
    assert got == {
        (later.id, "skipped", "opted_out"): 2,
        (landline.id, "skipped", "no_mobile"): 2,
    }


def _csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    import csv

    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode("utf-8-sig")


HEADER = [
    "统一社会信用代码",
    "企业名称",
    "行业代码",
    "从业人员",
    "营业收入（万元）",
    "所在镇街",
    "标签",
    "推送手机号",
    "不接收推送",
]


def test_import_with_bad_rows_writes_nothing(engine, settings):
    setup(engine, settings)
    data = _csv(
        [
            HEADER,
            [
                uscc(1),
                "甲公司",
                "C1311",
                "25",
                "400",
                "蒲圻街道",
                "外贸，专精特新",
                "13800001111",
                "",
            ],
            [uscc(2)[:-1] + "0", "乙公司", "C1311", "25", "400", "蒲圻街道", "", "", ""],
            [uscc(3), "丙公司", "A13", "x", "-1", "北京", "", "02788888888", "也许"],
            [uscc(1), "甲公司重复", "", "", "", "", "", "", ""],
        ]
    )
    with session_scope(engine) as s:
        report = import_profiles(s, settings, "企业.csv", data, "admin")
    assert not report.ok
    got = {(e.row, e.field) for e in report.errors}
    assert got == {
        (3, "uscc"),
        (4, "industry_code"),
        (4, "employees"),
        (4, "revenue"),
        (4, "region"),
        (4, "push_mobile"),
        (4, "push_opt_out"),
        (5, "uscc"),
    }
    assert all(e.message and e.label for e in report.errors)
    assert next(e for e in report.errors if e.row == 5).message == "与第 2 行重复"
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(func.count()).select_from(Enterprise)).one() == 0
        assert s.exec(select(func.count()).select_from(PolicyPushRun)).one() == 0


def test_import_csv_and_xlsx(engine, settings):
    import openpyxl

    setup(engine, settings)
    with session_scope(engine) as s:
        pid = policy(s, settings, tags=["外贸"]).id
        policy(s, settings, status=ArticleStatus.draft)
    with session_scope(engine) as s:
        report = import_profiles(
            s,
            settings,
            "a.csv",
            _csv(
                [
                    HEADER,
                    [
                        uscc(1),
                        "甲公司",
                        "C1311",
                        "25",
                        "400",
                        "蒲圻街道",
                        "外贸，专精特新",
                        "13800001111",
                        "",
                    ],
                    ["", "", "", "", "", "", "", "", ""],
                    [uscc(2), "乙公司", "F52", "9", "100", "", "", "", "是"],
                ]
            ),
            "admin",
        )
    assert report.ok and (report.rows, report.created, report.updated) == (2, 2, 0)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["统一社会信用代码", "从业人员", "营业收入（万元）", "标签"])
    ws.append([uscc(1), 1000, 40000, "外贸"])
    ws.append([uscc(3), 5, 20.5, None])
    buf = io.BytesIO()
    wb.save(buf)
    with session_scope(engine) as s:
        report = import_profiles(s, settings, "b.xlsx", buf.getvalue(), "admin")
        assert report.ok and (report.created, report.updated) == (1, 1)
        runs = s.exec(select(PolicyPushRun)).all()
        # one run per import (every in-force policy at once: one SMS per enterprise)
        assert [(r.article_id, r.enterprise_id) for r in runs] == [(None, None)] * 2
    for r in runs:
        run_push(engine, settings, r.id or 0)
    assert {p.article_id for p in _pushes(engine)} == {pid}  # the in-force policies only
    with session_scope(engine, read_only=True) as s:
        e1 = s.exec(select(Enterprise).where(Enterprise.uscc == uscc(1))).one()
        e2 = s.exec(select(Enterprise).where(Enterprise.uscc == uscc(2))).one()
        e3 = s.exec(select(Enterprise).where(Enterprise.uscc == uscc(3))).one()
    assert (e1.size_band, e1.tags, e1.region, e1.name) == ("large", ["外贸"], "蒲圻街道", "甲公司")
    assert e2.push_opt_out and e2.push_opt_out_at is not None and e2.size_band == "micro"
    assert e3.size_band == "micro" and e3.revenue == 20.5  # no industry: 其他 (employees only)


def test_import_refuses_other_files(engine, settings):
    from ticketing.errors import InvalidInput

    setup(engine, settings)
    with pytest.raises(InvalidInput), session_scope(engine) as s:
        import_profiles(s, settings, "c.txt", b"x", "admin")
    with session_scope(engine) as s:
        report = import_profiles(s, settings, "d.csv", _csv([["名称"], ["x"]]), "admin")
    assert [(e.row, e.field) for e in report.errors] == [(1, "uscc")]


def test_ticket_links_to_policy(engine, settings):
    from ticketing.intake import submit
    from ticketing.schemas import TicketIn

    setup(engine, settings)
    with session_scope(engine) as s:
        pid = policy(s, settings).id
        t = submit(
            s,
            TicketIn(
                channel="hotline",
                content="请问稳岗补贴怎么申请",
                submitter_phone="13800001111",
                channel_data={"call_id": "c-1"},
                send_notice=False,
            ),
            settings=settings,
            actor="agent",
        )
        assert link_ticket_policy(s, t.id, pid, "agent") is True
        assert link_ticket_policy(s, t.id, pid, "agent") is False
        assert [a.id for a in ticket_policies(s, t.id)] == [pid]


def test_answer_from_a_policy_article_links_the_ticket(engine, settings):
    """直接答复 from a policy: the ticket is about that policy (a guide links nothing)."""
    from kb_helpers import seed_store

    from ticketing.direct_answer import answer_at_intake
    from ticketing.knowledge.models import KbArticle as Article
    from ticketing.schemas import TicketIn

    seed_store(engine, settings)
    with session_scope(engine, read_only=True) as s:
        pol = s.exec(select(Article.id).where(Article.seed_key == "tax-003")).one()
        guide = s.exec(select(Article.id).where(Article.kind == "guide")).first()
    with session_scope(engine) as s:
        t = answer_at_intake(
            s,
            settings,
            TicketIn(
                channel="hotline",
                content="小规模纳税人有什么税收优惠",
                channel_data={"call_id": "c-9"},
            ),
            article_ids=[pol, guide],
            note="按政策可享受减免",
            actor="agent1",
        )
        assert [a.id for a in ticket_policies(s, t.id)] == [pol]
