"""Monthly department assessment (ticketing.assessment) against a small month written out by
hand: January 2027, two departments, every expected figure derived in a comment. Runs on SQLite
and PostgreSQL (the `engine` fixture). Times are local (+08:00, Asia/Shanghai) in the fixture."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest
from openpyxl import load_workbook

from config.database import session_scope
from config.settings import Settings
from ticketing.assessment import (
    AssessmentMonthCache,
    assess,
    decide_appeal,
    department_portrait,
    department_row,
    file_appeal,
    indicator_rows,
    keep_months,
    list_appeals,
    parse_period,
    recompute_month,
    to_csv,
    to_xlsx,
    warm_up,
)
from ticketing.assessment.cache import compute as cache_compute
from ticketing.errors import Conflict, InvalidInput
from ticketing.models import Department, Evaluation, SubOrder, Ticket, TicketEvent

A, B = "SWJ", "SCJ"


def L(text: str) -> datetime:
    """A local (+08:00) wall time as the naive UTC the database stores."""
    return datetime.fromisoformat(text) - timedelta(hours=8)


class World:
    def __init__(self, engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.t: dict[str, int] = {}
        self.so: dict[str, int] = {}
        with session_scope(engine) as s:
            s.add(Department(code=A, name="市税务局"))
            s.add(Department(code=B, name="市市场监管局"))

    def ticket(self, key: str, **kw) -> int:
        with session_scope(self.engine) as s:
            t = Ticket(
                number=f"T202701{len(self.t) + 1:04d}",
                channel="web",
                title=f"事项{key}",
                content="内容",
                category="enterprise",
                created_at=L("2027-01-01 08:00"),
                **kw,
            )
            s.add(t)
            s.flush()
            self.t[key] = t.id
            return t.id

    def sub(self, key: str, ticket: str, dept: str, **kw) -> int:
        with session_scope(self.engine) as s:
            so = SubOrder(ticket_id=self.t[ticket], department_code=dept, **kw)
            s.add(so)
            s.flush()
            self.so[key] = so.id
            return so.id

    def event(self, ticket: str, sub: str | None, action: str, at: datetime, **detail) -> None:
        with session_scope(self.engine) as s:
            s.add(
                TicketEvent(
                    ticket_id=self.t[ticket],
                    suborder_id=self.so[sub] if sub else None,
                    actor="test",
                    action=action,
                    at=at,
                    detail=detail,
                )
            )

    def rate(self, ticket: str, round_: int, overall: str, at: datetime, source="submitter"):
        with session_scope(self.engine) as s:
            s.add(
                Evaluation(
                    ticket_id=self.t[ticket],
                    round=round_,
                    process=overall,
                    timeliness=overall,
                    result=overall,
                    overall=overall,
                    source=source,
                    created_at=at,
                )
            )

    def update_sub(self, key: str, **kw) -> None:
        with session_scope(self.engine) as s:
            so = s.get(SubOrder, self.so[key])
            for k, v in kw.items():
                setattr(so, k, v)
            s.add(so)


def january(engine, settings) -> World:
    """The month, as it stood on 31 January (the late events come in `february_events`)."""
    w = World(engine, settings)
    # --- department A (市税务局)
    w.ticket("t1")  # parallel: A and B, round 1
    w.sub(
        "so1",
        "t1",
        A,
        status="replied",
        dispatched_at=L("2027-01-05 09:00"),
        accept_due_at=L("2027-01-05 17:00"),
        accepted_at=L("2027-01-05 10:00"),
        deadline_at=L("2027-01-12 18:00"),
        replied_at=L("2027-01-10 12:00"),
    )
    w.ticket("t2", round=2, reopen_count=1)  # 不满意 → 重办 to A in round 2
    w.sub(
        "so2",
        "t2",
        A,
        status="replied",
        dispatched_at=L("2027-01-06 09:00"),
        accept_due_at=L("2027-01-06 17:00"),
        accepted_at=L("2027-01-07 09:00"),
        deadline_at=L("2027-01-13 18:00"),
        replied_at=L("2027-01-14 10:00"),
    )
    w.sub(
        "so5",
        "t2",
        A,
        round=2,
        status="accepted",
        dispatched_at=L("2027-01-16 09:00"),
        accept_due_at=L("2027-01-16 17:00"),
        accepted_at=L("2027-01-16 11:00"),
        deadline_at=L("2027-01-23 18:00"),
    )
    w.ticket("t3")  # returned by A ("not ours") within its accept time
    w.sub(
        "so3",
        "t3",
        A,
        status="returned",
        dispatched_at=L("2027-01-20 09:00"),
        accept_due_at=L("2027-01-20 17:00"),
        deadline_at=L("2027-01-27 18:00"),
    )
    w.event("t3", "so3", "suborder_returned", L("2027-01-20 15:00"), reason="非本部门职责")
    w.ticket("t4")  # dispatched at 23:30 local on 31 January = 15:30 UTC: January's
    w.sub(
        "so4",
        "t4",
        A,
        status="dispatched",
        dispatched_at=L("2027-01-31 23:30"),
        accept_due_at=L("2027-02-01 17:00"),
        deadline_at=L("2027-02-07 18:00"),
    )
    w.ticket("t6", dispatch_mode="direct", status="closed")  # 直接答复: no sub-order
    w.rate("t6", 1, "satisfied", L("2027-01-09 10:00"))
    w.ticket("t7", duplicate_of_id=w.t["t1"])  # 重复件 of t1: counted once (as t1)
    w.sub(
        "so7x",
        "t7",
        A,
        status="replied",
        dispatched_at=L("2027-01-08 09:00"),
        accept_due_at=L("2027-01-08 17:00"),
        accepted_at=L("2027-01-09 09:00"),
        deadline_at=L("2027-01-09 18:00"),
        replied_at=L("2027-01-20 09:00"),
    )
    w.event("t7", "so7x", "warning", L("2027-01-09 12:00"), to="red", step="finish")
    # warnings raised on A's sub-orders
    w.event("t2", "so2", "warning", L("2027-01-11 10:00"), to="blue", step="finish")
    w.event("t2", "so5", "warning", L("2027-01-22 10:00"), to="yellow", step="finish")
    w.event("t2", "so5", "warning", L("2027-01-23 12:00"), to="red", step="finish")
    # ratings: t1 satisfied (A and B had replied), t2 round 1 不满意 (A had replied)
    w.rate("t1", 1, "satisfied", L("2027-01-13 10:00"))
    w.rate("t2", 1, "unsatisfied", L("2027-01-15 10:00"), source="staff")
    # --- department B (市市场监管局)
    w.sub(
        "so6",
        "t1",
        B,
        status="replied",
        dispatched_at=L("2027-01-05 09:00"),
        accept_due_at=L("2027-01-05 17:00"),
        accepted_at=L("2027-01-05 16:59"),
        deadline_at=L("2027-01-12 18:00"),
        replied_at=L("2027-01-12 18:00"),
    )
    w.ticket("t8")  # never accepted
    w.sub(
        "so7",
        "t8",
        B,
        status="dispatched",
        dispatched_at=L("2027-01-25 09:00"),
        accept_due_at=L("2027-01-25 17:00"),
        deadline_at=L("2027-02-08 18:00"),
    )
    w.ticket("t9")  # an extension requested in January, decided in February
    w.sub(
        "so8",
        "t9",
        B,
        status="extension_requested",
        dispatched_at=L("2027-01-10 09:00"),
        accept_due_at=L("2027-01-10 17:00"),
        accepted_at=L("2027-01-10 10:00"),
        deadline_at=L("2027-01-20 18:00"),
        extension_until=L("2027-02-10 18:00"),
    )
    w.ticket("t10")  # staff 回访 rating superseded by the submitter's own
    w.sub(
        "so9",
        "t10",
        B,
        status="replied",
        dispatched_at=L("2027-01-02 09:00"),
        accept_due_at=L("2027-01-02 17:00"),
        accepted_at=L("2027-01-02 10:00"),
        deadline_at=L("2027-01-09 18:00"),
        replied_at=L("2027-01-03 10:00"),
    )
    w.rate("t10", 1, "unsatisfied", L("2027-01-04 10:00"), source="staff")
    w.rate("t10", 1, "basically_satisfied", L("2027-01-05 10:00"))
    return w


def february_events(w: World) -> None:
    """What happens after 31 January: none of it may change January's figures."""
    w.update_sub(
        "so4", status="replied", accepted_at=L("2027-02-01 09:00"), replied_at=L("2027-02-03 09:00")
    )
    w.event("t4", "so4", "warning", L("2027-02-01 00:10"), to="blue", step="accept")
    w.update_sub("so7", status="accepted", accepted_at=L("2027-02-02 09:00"))
    # the extension approved on 2 February moves so8's deadline to 10 February
    w.update_sub(
        "so8", status="replied", deadline_at=L("2027-02-10 18:00"), replied_at=L("2027-02-05 10:00")
    )
    w.event(
        "t9",
        "so8",
        "extension_approved",
        L("2027-02-02 09:00"),
        previous_deadline=L("2027-01-20 18:00").isoformat(),
        to="accepted",
    )
    w.update_sub("so5", status="replied", replied_at=L("2027-02-01 10:00"))
    w.rate("t2", 2, "satisfied", L("2027-02-02 10:00"))
    w.update_sub("so3", status="returned")


@pytest.fixture
def world(engine, settings) -> World:
    return january(engine, settings)


def _jan(w: World):
    with session_scope(w.engine, read_only=True) as s:
        return assess(s, w.settings, parse_period(w.settings, "2027-01"))


def _figures(result) -> dict:
    return {
        r.code: {k: (f.num, f.den, round(f.seconds)) for k, f in r.figures.items()}
        | {"score": r.score, "rank": r.rank}
        for r in result.rows
    }


def test_january_by_hand(world):
    r = _jan(world)
    a, b = r.row(A), r.row(B)
    fa = {k: v.value for k, v in a.figures.items()}
    fb = {k: v.value for k, v in b.figures.items()}
    # 派单量 A: so1, so2, so3, so5 and so4 (23:30 local on the 31st) = 5; t7 is a 重复件, t6 直接答复
    assert a.figures["volume"].den == 5
    # 及时签收率 A: decided in January so1 (10:00 ≤ 17:00 ✓), so2 (accepted the next day ✗),
    # so3 (returned 15:00 ≤ 17:00 ✓), so5 (11:00 ✓); so4's accept due is 1 February → 3/4
    assert (a.figures["accept_on_time"].num, a.figures["accept_on_time"].den) == (3, 4)
    # 按时办结率 A: so1 replied before its deadline ✓, so2 replied after ✗, so5 not replied by
    # its deadline 23 January ✗; so3 was returned (not counted); so4 due in February → 1/3
    assert (a.figures["finish_on_time"].num, a.figures["finish_on_time"].den) == (1, 3)
    assert a.figures["overdue"].den == 2  # so2, so5
    # 满意率 A: t1 满意 (A replied 10th, rated 13th), t2 不满意 (A replied 14th, rated 15th) → 1/2
    assert (a.figures["satisfaction"].num, a.figures["satisfaction"].den) == (1, 2)
    # 重办率 A: so5 is round 2 of t2 sent back to A, who replied in round 1 → 1/5
    assert (a.figures["rework"].num, a.figures["rework"].den) == (1, 5)
    # 回退率 A: so3 → 1/5
    assert (a.figures["returned"].num, a.figures["returned"].den) == (1, 5)
    # warnings A: blue so2, yellow so5, red so5 (t7's red is a 重复件's)
    assert [a.figures[f"warnings_{x}"].den for x in ("blue", "yellow", "red")] == [1, 1, 1]
    # 平均签收时长 A: so1 1 h, so2 24 h, so5 2 h → 27/3 = 9 h
    assert fa["avg_accept_hours"] == pytest.approx(9.0)
    # 平均办理时长 A: replied in January so1 5 d 3 h = 123 h, so2 8 d 1 h = 193 h → 158 h
    assert fa["avg_handle_hours"] == pytest.approx(158.0)

    # B: 派单量 so6, so7, so8, so9 = 4
    assert b.figures["volume"].den == 4
    # 及时签收率 B: so6 16:59 ✓, so7 never ✗ (due 25th), so8 ✓, so9 ✓ → 3/4
    assert (b.figures["accept_on_time"].num, b.figures["accept_on_time"].den) == (3, 4)
    # 按时办结率 B: so6 replied exactly at its deadline ✓, so9 ✓, so8 past 20 January unreplied
    # (the extension was not approved by the month's end) ✗; so7 due in February → 2/3
    assert (b.figures["finish_on_time"].num, b.figures["finish_on_time"].den) == (2, 3)
    assert b.figures["overdue"].den == 1
    # 满意率 B: t1 满意, t10 基本满意 (the submitter's, over the staff 不满意) → 2/2
    assert (b.figures["satisfaction"].num, b.figures["satisfaction"].den) == (2, 2)
    assert (b.figures["rework"].num, b.figures["returned"].num) == (0, 0)
    # 平均签收时长 B: so6 7 h 59 min, so8 1 h, so9 1 h → (7.9833 + 2) / 3
    assert fb["avg_accept_hours"] == pytest.approx((7 + 59 / 60 + 2) / 3)
    # 平均办理时长 B: so6 7 d 9 h = 177 h, so9 (2nd 09:00 → 3rd 10:00) 25 h → 101 h
    assert fb["avg_handle_hours"] == pytest.approx(101.0)

    # scores (assessment.yaml): A = 15×3/4 + 25×1/3 + 30×1/2 + 10×(1−1/5) + 5×(1−1/5)
    #   + (15 − 0.5 − 1 − 2 − 2×1) = 11.25 + 8.333 + 15 + 8 + 4 + 9.5 = 56.08 (不合格)
    assert a.score == pytest.approx(56.08) and a.band == "不合格"
    # B = 11.25 + 25×2/3 + 30 + 10 + 5 + (15 − 1) = 86.92 (良好)
    assert b.score == pytest.approx(86.92) and b.band == "良好"
    assert (b.rank, a.rank) == (1, 2)
    # the city: pooled 及时签收率 (3+3)/(4+4)
    assert r.city["accept_on_time"].value == pytest.approx(0.75)


def test_running_month_counts_as_of_now(world):
    """Mid-month (21 January, 12:00 local) a step whose time runs out later in the month is not
    yet missed, and what happens later is not yet read; the same month once ended is as of its
    end (test_january_by_hand)."""
    now = L("2027-01-21 12:00")
    with session_scope(world.engine, read_only=True) as s:
        period = parse_period(world.settings, "2027-01")
        a = assess(s, world.settings, period, now=now).row(A)
        a_only, _ = department_row(s, world.settings, period, A, now=now)
        late = indicator_rows(s, world.settings, period, A, "overdue", now=now)
    # 派单量 A: so1, so2, so3, so5; so4 comes on the 31st
    assert a.figures["volume"].den == 4
    # 按时办结率 A: so1 ✓, so2 ✗ (due the 13th, replied the 14th); so5 is due the 23rd: not yet
    assert (a.figures["finish_on_time"].num, a.figures["finish_on_time"].den) == (1, 2)
    assert a.figures["overdue"].den == 1  # so2 only (so5 was still within its time)
    assert (a_only.figures["finish_on_time"].num, a_only.figures["finish_on_time"].den) == (1, 2)
    assert [r.suborder_id for r in late] == [world.so["so2"]]
    # warnings A: blue so2 on the 11th; so5's yellow (22nd) and red (23rd) have not happened yet
    assert [a.figures[f"warnings_{x}"].den for x in ("blue", "yellow", "red")] == [1, 0, 0]


def test_month_boundary_in_shanghai(world):
    """so4 was dispatched at 2027-01-31 23:30 +08:00 (15:30 UTC): January's, not February's;
    a warning at 2027-02-01 00:10 +08:00 (31 January 16:10 UTC) is February's."""
    february_events(world)
    with session_scope(world.engine, read_only=True) as s:
        feb = assess(s, world.settings, parse_period(world.settings, "2027-02"))
        jan = assess(s, world.settings, parse_period(world.settings, "2027-01"))
    assert jan.row(A).figures["volume"].den == 5
    assert feb.row(A).figures["volume"].den == 0
    assert jan.row(A).figures["warnings_blue"].den == 1
    assert feb.row(A).figures["warnings_blue"].den == 1  # so4's, 00:10 local on 1 February
    # February: so4 accepted 09:00 ≤ 17:00 on the 1st ✓; B's so7 accept step was January's
    assert (feb.row(A).figures["accept_on_time"].num, feb.row(A).figures["accept_on_time"].den) == (
        1,
        1,
    )
    # February's finish steps of B: so8 under its extension (approved 2 February, to the 10th)
    # replied on the 5th ✓; so7 due 8 February, not replied ✗ → 1/2
    assert (feb.row(B).figures["finish_on_time"].num, feb.row(B).figures["finish_on_time"].den) == (
        1,
        2,
    )


def test_past_month_unchanged_after_late_events(world):
    before = _figures(_jan(world))
    february_events(world)
    assert _figures(_jan(world)) == before


def test_direct_answer_and_duplicates_count_nowhere(world):
    with session_scope(world.engine, read_only=True) as s:
        p = parse_period(world.settings, "2027-01")
        numbers = {
            row.ticket_id
            for code in ("volume", "satisfaction", "warnings_red", "finish_on_time")
            for d in (A, B)
            for row in indicator_rows(s, world.settings, p, d, code)
        }
    assert world.t["t6"] not in numbers and world.t["t7"] not in numbers


def test_slowest_matters_first(world):
    with session_scope(world.engine, read_only=True) as s:
        p = parse_period(world.settings, "2027-01")
        rows = indicator_rows(s, world.settings, p, A, "avg_handle_hours", longest_first=True)
    # so2 193 h, so1 123 h
    assert [(r.suborder_id, round(r.hours)) for r in rows] == [
        (world.so["so2"], 193),
        (world.so["so1"], 123),
    ]


def test_drill_down_lists_the_rows_behind_a_rate(world):
    with session_scope(world.engine, read_only=True) as s:
        p = parse_period(world.settings, "2027-01")
        rows = indicator_rows(s, world.settings, p, A, "finish_on_time")
    by_so = {r.suborder_id: r.hit for r in rows}
    assert by_so == {world.so["so1"]: True, world.so["so2"]: False, world.so["so5"]: False}
    assert all(not r.appealed for r in rows)


def _appeal(w: World, indicator: str, ticket: str, dept: str = A):
    number = f"T202701{list(w.t).index(ticket) + 1:04d}"
    with session_scope(w.engine) as s:
        return file_appeal(
            s,
            w.settings,
            month="2027-01",
            department=dept,
            indicator=indicator,
            ticket_number=number,
            reason="企业要求延后上门，非本部门原因",
            actor="swj_handler",
        ).id


def test_accepted_appeal_takes_the_ticket_out_and_rescores(world):
    appeal_id = _appeal(world, "finish_on_time", "t2")
    with session_scope(world.engine) as s:  # pending: nothing changes yet
        assert assess(s, world.settings, parse_period(world.settings, "2027-01")).row(
            A
        ).score == pytest.approx(56.08)
    with session_scope(world.engine) as s:
        a = decide_appeal(s, world.settings, appeal_id, accept=True, note="情况属实", actor="admin")
        assert (a.status, a.decided_by) == ("accepted", "admin") and a.decided_at is not None
    r = _jan(world).row(A)
    # the ticket t2 leaves A's 按时办结率 with both its sub-orders (so2 of round 1, so5 of
    # round 2): 1/3 → 1/1, and 超期件数 2 → 0:
    # 11.25 + 25×1 + 15 + 8 + 4 + (15 − 0.5 − 1 − 2) = 74.75 (合格)
    assert (r.figures["finish_on_time"].num, r.figures["finish_on_time"].den) == (1, 1)
    assert r.figures["overdue"].den == 0
    assert r.score == pytest.approx(74.75) and r.band == "合格"
    with session_scope(world.engine, read_only=True) as s:
        rows = indicator_rows(
            s, world.settings, parse_period(world.settings, "2027-01"), A, "finish_on_time"
        )
        assert [x.appealed for x in rows if x.ticket_id == world.t["t2"]] == [True, True]
        assert [(x.status, n) for x, n in list_appeals(s, month="2027-01")] == [
            ("accepted", "T2027010002")
        ]
    with session_scope(world.engine) as s, pytest.raises(Conflict):
        decide_appeal(s, world.settings, appeal_id, accept=False, note="再审", actor="admin")


def test_rejected_appeal_changes_nothing_and_needs_a_note(world):
    appeal_id = _appeal(world, "satisfaction", "t2")
    with session_scope(world.engine) as s, pytest.raises(InvalidInput):
        decide_appeal(s, world.settings, appeal_id, accept=False, note="", actor="admin")
    with session_scope(world.engine) as s:
        decide_appeal(s, world.settings, appeal_id, accept=False, note="评价有效", actor="admin")
    assert _jan(world).row(A).score == pytest.approx(56.08)
    with pytest.raises(Conflict):  # once per ticket, indicator and month
        _appeal(world, "satisfaction", "t2")


def test_appeal_must_name_a_ticket_of_the_indicator(world):
    with pytest.raises(InvalidInput):  # t8 is B's, not A's
        _appeal(world, "finish_on_time", "t8")
    with pytest.raises(InvalidInput):
        _appeal(world, "no_such_indicator", "t2")


def test_half_year_and_year_roll_up(world):
    february_events(world)
    with session_scope(world.engine, read_only=True) as s:
        h1 = assess(s, world.settings, parse_period(world.settings, "2027-H1"))
        year = assess(s, world.settings, parse_period(world.settings, "2027"))
        jan = assess(s, world.settings, parse_period(world.settings, "2027-01"))
        feb = assess(s, world.settings, parse_period(world.settings, "2027-02"))
    for code in ("volume", "warnings_blue", "satisfaction"):
        assert (
            h1.row(A).figures[code].den
            == jan.row(A).figures[code].den + feb.row(A).figures[code].den
        )
    assert h1.period.label == "2027年上半年" and h1.period.months[-1] == "2027-06"
    assert _figures(year) == _figures(h1)


def test_exports(world):
    r = _jan(world)
    wb = load_workbook(io.BytesIO(to_xlsx(r)))
    ws = wb.active
    assert ws["A1"].value == "2027年1月部门考核排名"
    head = [c.value for c in ws[2]]
    assert head[:4] == ["排名", "部门", "派单量", "及时签收率（%）"] and head[-2:] == [
        "得分",
        "等次",
    ]
    assert [c.value for c in ws[3]][:4] == [1, "市市场监管局", 4, 0.75]
    assert ws.cell(3, len(head) - 1).value == pytest.approx(86.92)
    assert ws.cell(3, 4).number_format == "0.0%"
    assert ws.cell(4, 2).value == "市税务局" and ws.cell(4, len(head)).value == "不合格"
    assert ws.cell(5, 2).value == "全市"
    text = to_csv(r).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == head
    assert rows[1][:5] == ["1", "市市场监管局", "4", "75.0%", "66.7%"]
    assert rows[2][-2:] == ["56.08", "不合格"]


def test_bad_period_is_refused(settings):
    for bad in ("2027-13", "2027-H3", "27-01", ""):
        with pytest.raises(InvalidInput):
            parse_period(settings, bad)


def test_every_indicator_has_its_definition():
    from ticketing.assessment import INDICATORS

    for ind in INDICATORS.values():
        assert ind.label and len(ind.doc) > 40 and ind.explain, ind.code


# ---------------------------------------------------------------- the month cache (cache.py)
MARCH = L("2027-03-01 12:00")  # January and February are closed then
JAN_31 = L("2027-01-31 23:50")  # January still running (its last row is at 23:30)


def _assess_at(w: World, now: datetime, key: str = "2027-01"):
    with session_scope(w.engine, read_only=True) as s:
        return assess(s, w.settings, parse_period(w.settings, key), now=now)


def _keep(w: World, *computed) -> int:
    with session_scope(w.engine) as s:
        return keep_months(s, w.settings, computed)


def _cache_row(w: World, month: str = "2027-01") -> AssessmentMonthCache | None:
    with session_scope(w.engine, read_only=True) as s:
        return s.get(AssessmentMonthCache, month)


def test_cached_figures_equal_the_live_computation(world):
    running = _assess_at(world, JAN_31)  # January running: live, nothing to keep
    assert not running.cached and running.to_keep is None
    first = _assess_at(world, MARCH)  # closed, not cached yet: computed, to keep
    assert not first.cached and first.to_keep is not None
    assert _keep(world, first.to_keep) == 1
    february_events(world)  # later events change nothing of January's
    cached = _assess_at(world, MARCH)
    assert cached.cached and cached.to_keep is None
    assert cached.computed_at == first.computed_at
    assert _figures(cached) == _figures(running) == _figures(first)
    assert cached.row(A).score == pytest.approx(56.08) and cached.row(B).rank == 1
    for k, f in running.city.items():
        assert (cached.city[k].num, cached.city[k].den) == (f.num, f.den)
        assert cached.city[k].seconds == pytest.approx(f.seconds)
    with session_scope(world.engine, read_only=True) as s:  # one department, from the cache
        row, at = department_row(
            s, world.settings, parse_period(world.settings, "2027-01"), A, now=MARCH
        )
        live_row, _ = department_row(
            s, world.settings, parse_period(world.settings, "2027-01"), A, now=JAN_31
        )
    assert at == first.computed_at and row.score == live_row.score == pytest.approx(56.08)
    assert {k: (f.num, f.den) for k, f in row.figures.items()} == {
        k: (f.num, f.den) for k, f in live_row.figures.items()
    }


def test_accepted_appeal_invalidates_the_month_and_the_job_recomputes_it(world, settings):
    from config.queues import get_queue

    queue = get_queue(settings, "default")
    queue.empty()
    _keep(world, _assess_at(world, MARCH).to_keep)
    stale = _assess_at(world, MARCH - timedelta(days=1))  # cached: read before the decision
    with session_scope(world.engine, read_only=True) as s:  # a view computing meanwhile
        racing = cache_compute(s, world.settings, parse_period(world.settings, "2027-01"), 0)
    appeal_id = _appeal(world, "finish_on_time", "t2")
    assert _cache_row(world).generation == 0 and queue.count == 0  # filing changes nothing
    with session_scope(world.engine) as s:
        decide_appeal(s, world.settings, appeal_id, accept=True, note="情况属实", actor="admin")
    row = _cache_row(world)
    assert row.generation == 1 and row.data is None and row.computed_at is None
    jobs = queue.jobs  # enqueued once the decision committed
    assert [(j.func_name, j.args[0]) for j in jobs] == [
        ("ticketing.jobs.run_assessment_month", "2027-01")
    ]
    assert _keep(world, racing) == 0  # read before the decision: never stored over it
    assert _cache_row(world).data is None
    fresh = _assess_at(world, MARCH)  # a view before the job ran: computed, with the appeal
    assert not fresh.cached and fresh.row(A).score == pytest.approx(74.75)
    done = recompute_month(world.engine, world.settings, "2027-01", now=MARCH)  # the job's work
    assert done["stored"] == 1
    warm = _assess_at(world, MARCH)
    assert warm.cached and warm.appeals_applied == 1
    assert warm.row(A).score == pytest.approx(74.75) and _figures(warm) == _figures(fresh)
    assert stale.cached and stale.row(A).score == pytest.approx(56.08)
    queue.empty()


def test_a_rejected_appeal_keeps_the_cache(world, settings):
    _keep(world, _assess_at(world, MARCH).to_keep)
    appeal_id = _appeal(world, "satisfaction", "t2")
    with session_scope(world.engine) as s:
        decide_appeal(s, world.settings, appeal_id, accept=False, note="评价有效", actor="admin")
    assert _cache_row(world).data is not None and _assess_at(world, MARCH).cached


def test_appeal_steps_are_on_the_tickets_history(world, settings):
    from ticketing.events import history

    appeal_id = _appeal(world, "finish_on_time", "t2")
    with session_scope(world.engine) as s:
        decide_appeal(s, world.settings, appeal_id, accept=False, note="超期属实", actor="admin")
    with session_scope(world.engine, read_only=True) as s:
        events = [e for e in history(s, world.t["t2"]) if e.action.startswith("assessment_")]
    assert [(e.action, e.actor) for e in events] == [
        ("assessment_appeal_filed", "swj_handler"),
        ("assessment_appeal_decided", "admin"),
    ]
    filed, decided = (e.detail for e in events)
    assert (
        filed["reason"] == "企业要求延后上门，非本部门原因"
        and filed["indicator"] == "finish_on_time"
    )
    assert (filed["month"], filed["department"], filed["appeal_id"]) == ("2027-01", A, appeal_id)
    assert (decided["decision"], decided["reason"]) == ("rejected", "超期属实")


def test_drill_down_pages(world):
    with session_scope(world.engine, read_only=True) as s:
        p = parse_period(world.settings, "2027-01")
        whole = indicator_rows(s, world.settings, p, A, "volume")
        pages = [
            indicator_rows(s, world.settings, p, A, "volume", limit=2, offset=o)
            for o in (0, 2, 4, 6)
        ]
    assert len(whole) == 5 and [len(x) for x in pages] == [2, 2, 1, 0]
    assert [r.suborder_id for page in pages for r in page] == [r.suborder_id for r in whole]
    assert [r.number for r in whole] == sorted(r.number for r in whole)


def test_warm_up_computes_closed_months_not_cached(world):
    assert warm_up(world.engine, world.settings, now=JAN_31) == []  # nothing closed yet
    assert warm_up(world.engine, world.settings, now=MARCH) == ["2027-01", "2027-02"]
    assert warm_up(world.engine, world.settings, now=MARCH) == []  # kept: nothing left
    assert _assess_at(world, MARCH, "2027-02").cached


def test_portrait_trend_from_the_cache_equals_live(world):
    february_events(world)
    p = parse_period(world.settings, "2027-02")
    with session_scope(world.engine, read_only=True) as s:
        cold = department_portrait(s, world.settings, p, A, now=MARCH)
    # the 12 months of the trend are closed and none was cached: each computed, to keep
    assert sorted(m.month for m in cold.to_keep) == cold.trend["months"]
    assert cold.trend["months"][0] == "2026-03" and len(cold.trend["months"]) == 12
    _keep(world, *cold.to_keep)
    with session_scope(world.engine, read_only=True) as s:
        warm = department_portrait(s, world.settings, p, A, now=MARCH)
        live = department_portrait(s, world.settings, p, A, now=L("2027-02-27 12:00"))
    assert warm.to_keep == [] and warm.result.cached
    assert warm.trend == cold.trend
    assert warm.trend["months"][-2:] == ["2027-01", "2027-02"]
    jan = warm.trend["months"].index("2027-01")
    assert warm.trend["series"]["score"][jan] == pytest.approx(56.08)
    # February as of its running days (27th, live) is not shown for March: the trend points of
    # the closed January are the same either way
    assert live.trend["series"]["score"][jan] == warm.trend["series"]["score"][jan]
    assert [r.suborder_id for r in warm.slowest] == [r.suborder_id for r in cold.slowest]
    # the warm portrait read its slowest matters by the sub-orders the month kept
    from ticketing.assessment.cache import cached_month

    with session_scope(world.engine, read_only=True) as s:
        kept = cached_month(s, world.settings, p)
    assert kept is not None and kept.slowest is not None
    assert kept.slowest[A] == [r.suborder_id for r in cold.slowest] != []
