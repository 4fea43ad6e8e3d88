"""The fast intake path (Core INSERTs, in batches) against the ORM dispatch it stands for.

ticketing.intake_write writes a new ticket and its automatic first dispatch with plain INSERTs
(a single submit is a batch of one). Where a ticket goes is one function both writers call
(ticketing.dispatch_rule.decide, tested in test_dispatch_rule.py); these tests hold the two
writers' rows equal, row for row and event for event, to inserting the same ticket pending and
calling dispatch.auto_dispatch — over texts that take every branch.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from config.database import session_scope
from ticketing import dispatch
from ticketing.classifier import get_classifier
from ticketing.departments import sync_departments
from ticketing.events import history
from ticketing.intake import derive_title, submit
from ticketing.models import SubOrder, Ticket, TicketEvent, utcnow
from ticketing.routing import load_rules
from ticketing.sla import deadline_for

DATA = Path(__file__).resolve().parents[2] / "ticketing" / "data" / "labelled.csv"
TICKET_FIELDS = (
    "channel",
    "title",
    "content",
    "category",
    "urgency",
    "status",
    "warning",
    "dispatch_mode",
    "suggested_department",
    "classifier_confidence",
    "submitter_phone",
    "channel_data",
    "sla_basis",
    "deadline_at",
    "round",
    "reopen_count",
    "created_by",
)
SUB_FIELDS = (
    "department_code",
    "round",
    "status",
    "instructions",
    "deadline_at",
    "dispatched_by",
    "handoff_status",
)


def _texts(settings) -> list[str]:
    with DATA.open(encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)][:40]
    rule = load_rules(settings)[0]
    texts.append(f"咨询一下{rule.keywords[0]}的办理流程")  # a routing-rule hit
    texts.append("嗯嗯那个就是想问一下")  # nothing to go on: low confidence → manual
    return texts


def _events(session, ticket_id: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for e in history(session, ticket_id):
        detail = dict(e.detail)
        detail.pop("number", None)
        out.append((e.action, detail, e.suborder_id is not None))
    return out


def _reference(session, settings, text: str) -> int:
    """The ORM path: the same ticket inserted pending, then dispatch.auto_dispatch."""
    prediction = get_classifier().predict(f"{derive_title(text)}\n{text}")
    now = utcnow()
    deadline, basis = deadline_for(settings, prediction.category, prediction.urgency, now)
    ticket = Ticket(
        number=f"REF-{now.timestamp()}",
        channel="web",
        title=derive_title(text),
        content=text,
        category=prediction.category,
        urgency=prediction.urgency,
        suggested_department=prediction.department,
        classifier_confidence=prediction.confidence,
        channel_data={},
        sla_basis=basis,
        deadline_at=deadline,
        created_by="tester",
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    session.flush()
    from ticketing import events

    events.record(
        session,
        ticket.id,
        "tester",
        "created",
        channel="web",
        category=prediction.category,
        urgency=prediction.urgency,
        classified=True,
        confidence=prediction.confidence,
        suggested_department=prediction.department,
        deadline=deadline,
    )
    dispatch.auto_dispatch(session, settings, ticket, prediction, "tester", created_here=True)
    session.flush()
    return ticket.id


def _snapshot(session, ticket_id: int) -> dict[str, Any]:
    t = session.get(Ticket, ticket_id)
    subs = session.exec(select(SubOrder).where(SubOrder.ticket_id == ticket_id)).all()
    return {
        "ticket": {f: getattr(t, f) for f in TICKET_FIELDS if f != "deadline_at"},
        "suborders": sorted(tuple(getattr(s, f) for f in SUB_FIELDS[:4]) for s in subs),
        "events": _events(session, ticket_id),
    }


def test_fast_intake_equals_orm_auto_dispatch(engine, settings):
    with session_scope(engine) as s:
        sync_departments(s, settings)
    seen = set()
    for text in _texts(settings):
        with session_scope(engine) as s:
            fast = submit(
                s,
                {"channel": "web", "content": text, "send_notice": False},
                settings=settings,
                actor="tester",
            )
            fast_id = fast.id
        with session_scope(engine) as s:
            ref_id = _reference(s, settings, text)
        with session_scope(engine, read_only=True) as s:
            a, b = _snapshot(s, fast_id), _snapshot(s, ref_id)
            # the event deadlines and sub-order deadlines follow each ticket's own clock
            for snap in (a, b):
                for _action, detail, _ in snap["events"]:
                    detail.pop("deadline", None)
            assert a == b, text
            ticket = s.get(Ticket, fast_id)
            assert ticket.number.startswith(f"{settings.ticket_prefix}-")
            created = s.exec(
                select(TicketEvent).where(
                    TicketEvent.ticket_id == fast_id, TicketEvent.action == "created"
                )
            ).one()
            assert created.detail["number"] == ticket.number
            basis = next(
                (d.get("basis") for act, d, _ in a["events"] if act == "dispatched"), "manual"
            )
            seen.add(basis)
    assert seen == {"rule", "classifier", "manual"}, seen


def test_returned_ticket_is_complete_and_matches_the_row(engine, settings):
    """The instance submit returns was attached without a load: nothing left expired, and every
    attribute equals what a fresh session reads back."""
    with session_scope(engine) as s:
        sync_departments(s, settings)
    with session_scope(engine) as s:
        t = submit(
            s,
            {
                "channel": "hotline",
                "content": "企业开办营业执照怎么网上办理？",
                "submitter_phone": "13800138000",
                "channel_data": {"call_id": "perf-1"},
                "send_notice": False,
            },
            settings=settings,
            actor="tester",
        )
        from sqlalchemy import inspect

        assert not inspect(t).expired_attributes
        mine = {c: getattr(t, c) for c in Ticket.__table__.columns.keys()}  # noqa: SIM118
    with session_scope(engine, read_only=True) as s:
        row = s.get(Ticket, mine["id"])
        assert {c: getattr(row, c) for c in mine} == mine
        assert not mine["number"].startswith("~")


@pytest.mark.parametrize("n", [3])
def test_numbers_stay_gap_free_when_an_intake_rolls_back(engine, settings, n):
    """The number is taken in the intake's transaction: a failure after it still rolls it
    back with everything else, and the next intake reuses it."""
    with session_scope(engine) as s:
        sync_departments(s, settings)
    numbers = []
    for i in range(n):
        with pytest.raises(RuntimeError), session_scope(engine) as s:
            submit(
                s,
                {"channel": "web", "content": f"第{i}件事，稳岗补贴没到账"},
                settings=settings,
                actor="t",
            )
            raise RuntimeError("fail after the number was issued")
        with session_scope(engine) as s:
            t = submit(
                s,
                {"channel": "web", "content": f"第{i}件事，稳岗补贴没到账", "send_notice": False},
                settings=settings,
                actor="t",
            )
            numbers.append(int(t.number.rsplit("-", 1)[1]))
    assert numbers == list(range(numbers[0], numbers[0] + n))
