"""Read side: filters, Chinese full-text (FTS5 trigram / pg_trgm), inbox, enterprise file, departments."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import delete, text, update
from sqlmodel import func, select

from config.database import session_scope
from config.settings import DEFAULTS_DIR
from ticketing.departments import get_department, sync_departments
from ticketing.errors import InvalidInput, NotFound
from ticketing.intake import submit
from ticketing.models import Department, SubOrder, Ticket, TicketEvent
from ticketing.queries import (
    TicketFilter,
    department_inbox,
    enterprise_file,
    get_ticket_by_number,
    list_tickets,
)
from ticketing.schemas import TicketIn
from ticketing.uscc import build_uscc

USCC_A = build_uscc("MA4QUERY")
USCC_B = build_uscc("MA4THERE")

SEEDS = [
    dict(
        channel="web",
        title="营业执照年报逾期怎么补报",
        content="去年的企业年报忘记报了，现在被列入经营异常名录，想问怎么补报移出。",
        category="enterprise",
        urgency="general",
        enterprise_uscc=USCC_A,
        submitter_phone="13812345678",
    ),
    dict(
        channel="hotline",
        content="隔壁工地夜间施工噪音扰民严重，已经连续一周了。",
        category="complaint",
        urgency="urgent",
        submitter_phone="0715-1234567",
        channel_data={"call_id": "q-1"},
    ),
    dict(
        channel="window",
        title="不动产登记",
        content="窗口反映办证材料被退回三次，每次说法不一。",
        category="government",
        urgency="critical",
        enterprise_uscc=USCC_A,
        channel_data={"window_no": "B2"},
    ),
    dict(
        channel="opinion",
        content="网传某企业拖欠工资 100% 属实? 引用“原文”_链接",
        category="enterprise",
        urgency="general",
        channel_data={"source_url": "https://example.org/post/1"},
    ),
    dict(
        channel="survey",
        content="调研反馈：园区道路破损，货车进出困难。",
        category="government",
        urgency="general",
        enterprise_uscc=USCC_B,
        channel_data={"visit_id": "V-9"},
    ),
]


@pytest.fixture
def seeded(engine, settings) -> list[Ticket]:
    """Five tickets through the real intake (no departments yet, so none is auto-dispatched),
    then the departments, hand-made sub-orders and a few states set directly."""
    tickets = []
    for seed in SEEDS:
        with session_scope(engine) as s:
            tickets.append(
                submit(s, TicketIn(**seed, send_notice=False), settings=settings, actor="seed")
            )
    base = datetime(2026, 11, 20, 2, 0)
    with session_scope(engine) as s:
        sync_departments(s, settings)
        t1, t2, t3, _t4, t5 = tickets
        s.add(SubOrder(ticket_id=t1.id, department_code="SCJG", deadline_at=base + timedelta(3)))
        s.add(SubOrder(ticket_id=t2.id, department_code="SCJG", deadline_at=base + timedelta(1)))
        s.add(SubOrder(ticket_id=t2.id, department_code="CGJ", deadline_at=base))
        s.add(SubOrder(ticket_id=t3.id, department_code="SCJG", deadline_at=None))
        s.add(
            SubOrder(
                ticket_id=t5.id,
                department_code="SCJG",
                deadline_at=base + timedelta(2),
                status="replied",
            )
        )
        s.execute(update(Ticket).where(Ticket.id == t2.id).values(warning="red"))
        s.execute(update(Ticket).where(Ticket.id == t3.id).values(status="closed"))
        s.execute(update(Ticket).where(Ticket.id == t5.id).values(created_at=base))
    return tickets


def ids(result) -> list[int]:
    items, total = result
    assert total >= len(items)
    return [t.id for t in items]


def search(engine, **kw):
    with session_scope(engine, read_only=True) as s:
        return list_tickets(s, TicketFilter(**kw), 1, 50)


@pytest.mark.parametrize(
    "q, expected",
    [
        ("营业执照", [0]),  # FTS/trigram path (3+ chars), title
        ("经营异常名录", [0]),  # content
        ("年报", [0]),  # 2 chars: LIKE path
        ("噪音 扰民", [1]),  # several terms: all must match
        ("噪音 营业执照", []),
        ("不动产登记", [2]),  # title only
        ("100%", [3]),  # % is literal, not a wildcard
        ("%", [3]),
        ("_链接", [3]),
        ("“原文”", [3]),
        ('"', []),
        ("材料被退回", [2]),
        ("不存在的内容", []),
    ],
)
def test_full_text(engine, seeded, q, expected):
    got = ids(search(engine, q=q))
    assert sorted(got) == sorted(seeded[i].id for i in expected)


def test_full_text_follows_updates_and_deletes(engine, seeded):
    t5 = seeded[4]
    with session_scope(engine) as s:
        t = s.get(Ticket, t5.id)
        assert "道路破损" in t.title  # derived from the content at intake
        t.title = "路灯问题"
        t.content = "路灯不亮，夜间通行不安全。"
        s.add(t)
    assert ids(search(engine, q="道路破损")) == []
    assert ids(search(engine, q="路灯不亮")) == [t5.id]
    with session_scope(engine) as s:
        s.execute(delete(SubOrder).where(SubOrder.ticket_id == t5.id))
        s.execute(delete(TicketEvent).where(TicketEvent.ticket_id == t5.id))
        s.execute(delete(Ticket).where(Ticket.id == t5.id))
    assert ids(search(engine, q="路灯不亮")) == []


def test_search_uses_the_index(engine, seeded):
    with session_scope(engine, read_only=True) as s:
        if engine.dialect.name == "sqlite":
            plan = s.execute(
                text("EXPLAIN QUERY PLAN SELECT rowid FROM ticket_fts WHERE ticket_fts MATCH :q"),
                {"q": '"营业执照"'},
            ).all()
            assert any("VIRTUAL TABLE INDEX" in str(row) for row in plan)
        else:
            s.execute(text("SET LOCAL enable_seqscan = off"))
            plan = s.execute(
                text("EXPLAIN SELECT id FROM ticket WHERE content ILIKE :q"), {"q": "%营业执照%"}
            ).all()
            assert any("ix_ticket_content_trgm" in str(row) for row in plan), plan


def test_filters(engine, seeded):
    t1, t2, t3, t4, t5 = (t.id for t in seeded)
    assert sorted(ids(search(engine, channel="hotline"))) == [t2]
    assert sorted(ids(search(engine, category="government"))) == [t3, t5]
    assert sorted(ids(search(engine, urgency="general"))) == [t1, t4, t5]
    assert ids(search(engine, status="closed")) == [t3]
    assert ids(search(engine, warning="red")) == [t2]
    assert sorted(ids(search(engine, department="SCJG"))) == [t1, t2, t3, t5]
    assert ids(search(engine, department="CGJ")) == [t2]
    assert ids(search(engine, department="SWJ")) == []
    assert sorted(ids(search(engine, uscc=USCC_A.lower()))) == [t1, t3]
    assert ids(search(engine, phone="+86 138-1234-5678")) == [t1]
    assert ids(search(engine, phone="07151234567")) == [t2]
    assert ids(search(engine, created_to=datetime(2026, 11, 21))) == [t5]
    assert t5 not in ids(search(engine, created_from=datetime(2026, 11, 21)))
    assert ids(search(engine, department="SCJG", urgency="urgent", q="噪音")) == [t2]


def test_paging_and_order(engine, seeded):
    with session_scope(engine, read_only=True) as s:
        page1, total = list_tickets(s, TicketFilter(), 1, 2)
        page3, _ = list_tickets(s, TicketFilter(), 3, 2)
        everything, _ = list_tickets(s, TicketFilter(), 1, 50)
    assert total == 5 and len(page1) == 2 and len(page3) == 1
    assert [t.id for t in everything][-1] == seeded[4].id  # oldest last
    created = [(t.created_at, t.id) for t in everything]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize("page, size", [(0, 20), (1, 0), (1, 201), (-3, 20)])
def test_bad_paging(engine, page, size):
    with session_scope(engine, read_only=True) as s, pytest.raises(InvalidInput):
        list_tickets(s, TicketFilter(), page, size)


def test_bad_filters(engine):
    with session_scope(engine, read_only=True) as s:
        with pytest.raises(InvalidInput):
            list_tickets(s, TicketFilter(uscc="123"))
        with pytest.raises(InvalidInput):
            list_tickets(s, TicketFilter(phone="junk"))
    with pytest.raises(ValidationError):
        TicketFilter(status="weird")
    with pytest.raises(ValidationError):
        TicketFilter(q="长" * 201)


def test_department_inbox(engine, seeded):
    t1, t2, t3, _t4, t5 = (t.id for t in seeded)
    with session_scope(engine, read_only=True) as s:
        rows, total = department_inbox(s, "SCJG")
        assert total == 4
        assert [t.id for _, t in rows] == [t2, t5, t1, t3]  # by deadline, none last
        assert all(so.department_code == "SCJG" for so, _ in rows)
        rows, total = department_inbox(s, "SCJG", status="dispatched")
        assert total == 3 and t5 not in [t.id for _, t in rows]
        rows, total = department_inbox(s, "SCJG", status=["replied"], page_size=1)
        assert total == 1 and rows[0][1].id == t5
        rows, total = department_inbox(s, "SWJ")
        assert (rows, total) == ([], 0)
        with pytest.raises(NotFound):
            department_inbox(s, "NOPE")
        with pytest.raises(InvalidInput):
            department_inbox(s, "SCJG", status="sleeping")


def test_enterprise_file(engine, seeded):
    with session_scope(engine, read_only=True) as s:
        ent, tickets = enterprise_file(s, f" {USCC_A.lower()} ")
        assert ent.uscc == USCC_A
        assert [t.id for t in tickets] == [seeded[2].id, seeded[0].id]  # newest first
        with pytest.raises(NotFound):
            enterprise_file(s, build_uscc("MA4NTHR1"))
        with pytest.raises(InvalidInput):
            enterprise_file(s, "91421281MA4QUERY00")


def test_get_ticket_by_number(engine, seeded):
    with session_scope(engine, read_only=True) as s:
        assert get_ticket_by_number(s, f" {seeded[1].number.lower()} ").id == seeded[1].id
        for bad in ("DXE-20000101-000001", "", "x" * 100):
            with pytest.raises(NotFound):
                get_ticket_by_number(s, bad)


def test_sync_departments_is_idempotent(engine, settings, tmp_path):
    configured = yaml.safe_load((DEFAULTS_DIR / "departments.yaml").read_text(encoding="utf-8"))
    n = len(configured["departments"])
    for _ in range(2):
        with session_scope(engine) as s:
            sync_departments(s, settings)
    with session_scope(engine, read_only=True) as s:
        assert s.exec(select(func.count()).select_from(Department)).one() == n
        assert get_department(s, "SWJ").name == "税务局"
        with pytest.raises(NotFound):
            get_department(s, "NOPE")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    configured["departments"][1]["name"] = "国家税务总局赤壁市税务局"
    configured["departments"][1]["handoff_url"] = "https://tax.example.org/hook"
    configured["departments"].append({"code": "NEW", "name": "新部门", "active": False})
    (cfg / "departments.yaml").write_text(
        yaml.safe_dump(configured, allow_unicode=True), encoding="utf-8"
    )
    changed = settings.model_copy(update={"config_dir": cfg})
    with session_scope(engine) as s:
        sync_departments(s, changed)
    with session_scope(engine, read_only=True) as s:
        swj = get_department(s, "SWJ")
        assert (swj.name, swj.handoff_url) == (
            "国家税务总局赤壁市税务局",
            "https://tax.example.org/hook",
        )
        assert get_department(s, "NEW").active is False
        assert s.exec(select(func.count()).select_from(Department)).one() == n + 1


def test_short_term_search_total_is_capped_and_long_term_total_exact(engine, settings):
    """A 1–2 character term has no trigram index: its count stops at a cap (documented as
    'at least'); a ≥ 3 character term is counted exactly. The page itself is always right."""
    from ticketing.queries import COUNT_AHEAD_PAGES

    n = 12
    with session_scope(engine) as s:
        sync_departments(s, settings)
        for i in range(n):
            submit(
                s,
                TicketIn(channel="web", content=f"稳岗补贴申请第{i}次咨询", send_notice=False),
                settings=settings,
                actor="test",
            )
    page_size = 2
    cap = page_size * (COUNT_AHEAD_PAGES + 1) + 1
    assert cap < n  # the fixture must exceed the cap for the test to mean anything
    with session_scope(engine, read_only=True) as s:
        items, total = list_tickets(s, TicketFilter(q="补贴"), page=1, page_size=page_size)
        assert len(items) == page_size and total == cap
        items, total = list_tickets(s, TicketFilter(q="补贴申请"), page=1, page_size=page_size)
        assert len(items) == page_size and total == n
        # on the last page the short-term count reaches the true end
        items, total = list_tickets(s, TicketFilter(q="补贴"), page=6, page_size=page_size)
        assert len(items) == 2 and total == n


def test_a_plain_search_counts_in_the_fts_index_like_through_the_table(engine, settings):
    """SQLite counts a search with no other filter in ticket_fts alone: the same total as the
    count through the ticket table, for one term, several terms, quotes, and with a filter; the
    page holds exactly the tickets with every term (several terms once all matched the last)."""
    import random

    from ticketing.queries import _conditions

    rng = random.Random(3)
    words = ["稳岗补贴", "营业执照", "施工许可证", '带"引号"的话']
    with session_scope(engine) as s:
        sync_departments(s, settings)
        for i in range(40):
            text = "、".join(rng.sample(words, rng.randint(1, 3))) + f"，第{i}件"
            submit(
                s,
                TicketIn(channel="web", content=text, send_notice=False),
                settings=settings,
                actor="test",
            )
    with session_scope(engine, read_only=True) as s:
        for q in [
            "营业执照",
            "稳岗补贴 营业执照",
            '"引号"',
            "施工许可证 稳岗补贴 营业执照",
            "无此词",
        ]:
            f = TicketFilter(q=q)
            _, total = list_tickets(s, f, page=1, page_size=5)
            through = s.exec(
                select(func.count()).select_from(Ticket).where(*_conditions(s, f))
            ).one()
            assert total == through, q
            expected = sum(
                all(t in row.content for t in q.split()) for row in s.exec(select(Ticket))
            )
            assert total == expected, q
        _, total = list_tickets(
            s, TicketFilter(q="营业执照", channel="hotline"), page=1, page_size=5
        )
        assert total == 0
