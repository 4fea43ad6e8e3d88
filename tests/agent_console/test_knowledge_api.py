"""The knowledge API and 直接答复 over HTTP (real app, SQLite and PostgreSQL): public search and
read without login (public, published, unexpired only; rate-limited), staff search of internal
articles, the edit/review/publish flow by the owning department only, 直接答复 at intake and on a
waiting consultation, the caller's rating through the answer SMS's token, figures and gaps.
(Every role × every route: tests/agent_console/test_roles.py walks ROLE_MATRIX.)"""

from __future__ import annotations

import pytest
from console_helpers import assert_error, fresh_window, make_client
from sqlmodel import select

from config.database import session_scope
from ticketing.knowledge import KbArticle, KbQueryLog
from ticketing.knowledge.seed import seed_knowledge
from ticketing.models import Notice, Ticket

ARTICLE = {
    "title": "个体户网上年报操作说明",
    "summary": "在公示系统填报即可。",
    "body": '<p>登录公示系统填报<script>alert(1)</script><a href="javascript:x()">链接</a></p>',
    "kind": "常见问答",
    "department_code": "SCJG",
    "keywords": ["年报", "个体户"],
}


@pytest.fixture
def kb(api):
    with session_scope(api.engine) as s:
        seed_knowledge(s, api.settings)
    return api


def _by_key(api, key: str) -> int:
    with session_scope(api.engine, read_only=True) as s:
        return s.exec(select(KbArticle.id).where(KbArticle.seed_key == key)).one()


def _set(api, article_id: int, **values) -> None:
    with session_scope(api.engine) as s:
        a = s.get(KbArticle, article_id)
        for k, v in values.items():
            setattr(a, k, v)


def test_public_search_and_read_without_login(kb):
    c = kb.client
    r = c.get("/api/v1/public/knowledge/search", params={"q": "公积金么样取出来"})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits and hits[0]["id"] == _by_key(kb, "gjj-002")
    assert "<mark>" in hits[0]["snippet"] and "status" not in hits[0]
    one = c.get(f"/api/v1/public/knowledge/articles/{hits[0]['id']}")
    assert one.status_code == 200 and "提取" in one.json()["body"]
    with session_scope(kb.engine, read_only=True) as s:
        logs = s.exec(select(KbQueryLog)).all()
        assert {(x.kind, x.audience) for x in logs} == {("search", "public"), ("open", "public")}


def test_public_never_sees_internal_draft_or_expired(kb):
    internal, draft, expired = (_by_key(kb, k) for k in ("reg-002", "reg-003", "reg-004"))
    _set(kb, internal, is_public=False)
    _set(kb, draft, status="draft")
    _set(kb, expired, status="expired")
    c = kb.client
    for aid in (internal, draft, expired, 999999):
        assert_error(c.get(f"/api/v1/public/knowledge/articles/{aid}"), 404, "not_found")
    r = c.get("/api/v1/public/knowledge/search", params={"q": "开公司注册有限公司", "limit": 10})
    assert internal not in [h["id"] for h in r.json()["hits"]]
    staff = kb.client.get(
        "/api/v1/knowledge/search",
        params={"q": "开公司注册有限公司", "limit": 10},
        headers=kb.auth("agent"),
    )
    assert internal in [h["id"] for h in staff.json()["hits"]]
    assert (
        kb.client.get(
            f"/api/v1/knowledge/articles/{internal}", headers=kb.auth("agent")
        ).status_code
        == 200
    )


def test_public_search_is_rate_limited_in_its_own_bucket(kb):
    """Reads have their own, larger bucket: more reads than the submission limit are answered
    (the suggestions fetched while a citizen types never use up the budget for submitting)."""
    s = kb.settings.model_copy(
        update={"public_rate_limit_per_minute": 3, "public_read_rate_limit_per_minute": 5}
    )
    with make_client(s) as c:
        fresh_window()
        codes = [
            c.get("/api/v1/public/knowledge/search", params={"q": "发票"}).status_code
            for _ in range(5)
        ]
        assert codes == [200] * 5
        assert_error(
            c.get("/api/v1/public/knowledge/search", params={"q": "发票"}), 429, "rate_limited"
        )


def test_search_input_errors(kb):
    c = kb.client
    assert_error(c.get("/api/v1/public/knowledge/search"), 422)
    assert_error(c.get("/api/v1/public/knowledge/search", params={"q": "字" * 201}), 422)
    err = assert_error(
        c.get("/api/v1/public/knowledge/search", params={"q": "发票", "kind": "x"}), 422
    )
    assert "类型" in err["message"]
    r = c.get("/api/v1/public/knowledge/search", params={"q": "发票", "kind": "政策"})
    assert r.status_code == 200 and all(h["kind"] == "policy" for h in r.json()["hits"])


def test_owning_department_edits_reviews_publishes_and_versions_are_kept(kb):
    c = kb.client
    r = c.post("/api/v1/knowledge/articles", json=ARTICLE, headers=kb.auth("handler"))
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["status"] == "draft" and "<script" not in a["body"] and "javascript" not in a["body"]
    aid = a["id"]
    # another department's handler: 403 on everything that changes it
    other = kb.auth("handler_b")
    assert_error(
        c.post("/api/v1/knowledge/articles", json=ARTICLE, headers=other), 403, "forbidden"
    )
    assert_error(
        c.put(f"/api/v1/knowledge/articles/{aid}", json=ARTICLE, headers=other), 403, "forbidden"
    )
    assert_error(c.post(f"/api/v1/knowledge/articles/{aid}/review", json={}, headers=other), 403)
    # not yet reviewed: publish refused
    assert_error(
        c.post(f"/api/v1/knowledge/articles/{aid}/publish", json={}, headers=kb.auth("handler")),
        409,
        "illegal_transition",
    )
    for step in ("review", "publish"):
        r = c.post(
            f"/api/v1/knowledge/articles/{aid}/{step}",
            json={"note": step},
            headers=kb.auth("handler"),
        )
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "published"
    r = c.put(
        f"/api/v1/knowledge/articles/{aid}",
        json={**ARTICLE, "title": "个体户年报操作说明（修订）", "expected_version": 1},
        headers=kb.auth("admin"),
    )
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["status"] == "draft"
    stale = c.put(
        f"/api/v1/knowledge/articles/{aid}",
        json={**ARTICLE, "expected_version": 1},
        headers=kb.auth("handler"),
    )
    assert_error(stale, 409, "stale_version")
    rows = c.get(f"/api/v1/knowledge/articles/{aid}/versions", headers=kb.auth("leader")).json()
    assert [(v["version"], v["action"], v["actor"]) for v in rows] == [
        (1, "created", "handler"),
        (1, "reviewed", "handler"),
        (1, "published", "handler"),
        (2, "edited", "admin"),
    ]
    listed = c.get(
        "/api/v1/knowledge/articles", params={"status": "draft"}, headers=kb.auth("agent")
    )
    assert aid in [x["id"] for x in listed.json()["items"]]


def test_bad_article_is_refused_in_chinese_and_writes_nothing(kb):
    before = kb.count(KbArticle)
    r = kb.client.post(
        "/api/v1/knowledge/articles", json={**ARTICLE, "kind": "随便"}, headers=kb.auth("admin")
    )
    assert_error(r, 422)
    r = kb.client.post(
        "/api/v1/knowledge/articles",
        json={**ARTICLE, "department_code": "NOPE"},
        headers=kb.auth("admin"),
    )
    assert "部门" in assert_error(r, 422)["message"]
    assert kb.count(KbArticle) == before


def test_agent_answers_directly_and_the_caller_rates_by_the_sms_token(kb):
    body = {
        "ticket": {
            "channel": "hotline",
            "content": "咨询个体户小吃店开办需要哪些材料",
            "submitter_phone": "13812345678",
            "channel_data": {"call_id": "api-call-1"},
        },
        "article_ids": [_by_key(kb, "lic-002")],
        "note": "先办执照再办食品经营许可证",
    }
    r = kb.client.post("/api/v1/tickets/direct-answer", json=body, headers=kb.auth("agent"))
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["status"] == "resolved" and t["deadline_at"] is None and t["number"]
    with session_scope(kb.engine, read_only=True) as s:
        tid = s.exec(select(Ticket.id).where(Ticket.number == t["number"])).one()
        notice = s.exec(select(Notice).where(Notice.ticket_id == tid)).one()
        sent = notice.sent_body or ""
    # the token is in what the caller was sent, never in what staff read
    assert "token=" in sent and "token=" not in notice.body.replace("token=[已隐去]", "")
    token = sent.split("token=", 1)[1].split()[0].rstrip("。，,")
    r = kb.client.post(
        f"/api/v1/public/tickets/{t['number']}/evaluation",
        json={
            "evaluation_token": token,
            "process": "satisfied",
            "timeliness": "satisfied",
            "result": "satisfied",
        },
    )
    assert r.status_code == 201, r.text
    detail = kb.client.get(f"/api/v1/tickets/{t['number']}", headers=kb.auth("agent")).json()
    assert detail["status"] == "closed"
    # the leader's figures count it as answered at first contact
    f = kb.client.get("/api/v1/knowledge/figures", headers=kb.auth("leader")).json()
    assert f["direct_answers"] == 1 and f["direct_answer_satisfaction"] == 1.0
    assert_error(kb.client.get("/api/v1/knowledge/figures", headers=kb.auth("agent")), 403)


def test_dispatcher_answers_a_waiting_consultation(kb):
    with session_scope(kb.engine) as s:  # a consultation waiting for a dispatcher
        t = Ticket(
            number="DXE-KB-WAITING",
            channel="web",
            title="政策咨询",
            content="想了解有哪些惠企政策",
            category="complaint",
            urgency="general",
            status="pending_dispatch",
            created_by="test",
        )
        s.add(t)
    number = "DXE-KB-WAITING"
    r = kb.client.post(
        f"/api/v1/tickets/{number}/direct-answer",
        json={"article_ids": [_by_key(kb, "hq-001")], "note": "已告知惠企政策查询渠道"},
        headers=kb.auth("dispatcher"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved"
    again = kb.client.post(
        f"/api/v1/tickets/{number}/direct-answer",
        json={"note": "再答一次"},
        headers=kb.auth("dispatcher"),
    )
    assert_error(again, 409, "illegal_transition")
    bad = kb.client.post(
        "/api/v1/tickets/DXE-NOPE/direct-answer", json={"note": "x"}, headers=kb.auth("supervisor")
    )
    assert_error(bad, 404)


def test_gaps_report_for_a_handler_is_its_own_department(kb):
    kb.client.get("/api/v1/public/knowledge/search", params={"q": "量子纠缠实验室"})
    r = kb.client.get("/api/v1/knowledge/reports/gaps", headers=kb.auth("handler_b"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["no_hit_articles"] and {a["department_code"] for a in body["no_hit_articles"]} == {
        "SWJ"
    }
    assert {"question": "量子纠缠实验室", "count": 1} in body["unanswered_questions"]
    r = kb.client.get(
        "/api/v1/knowledge/reports/gaps",
        params={"since": "2026-02-01", "until": "2026-01-01"},
        headers=kb.auth("admin"),
    )
    assert_error(r, 422)
