"""高频事项分析 (ticketing.hotspots) on a small set of tickets written out here, over four months
(2026-08 … 2026-11, Asia/Shanghai), with every expected figure derived by hand below.

The set (created_at in UTC; November is [2026-10-31T16:00Z, 2026-11-30T16:00Z)):

  keyword   category    dept  channel  Aug Sep Oct Nov   notes
  营业执照   government  SCJG  hotline   5   5   5   7    Nov: each resolved after 24 h; ratings
                                                         满意, 不满意 and a superseded staff 不满意
  停电       enterprise  GDGS  hotline   1   1   1   6    Nov: one at 2026-10-31T16:30Z (= Nov 1st
                                                         00:30 local), one whose words come from
                                                         its call transcript only
  噪音       complaint   -     web       0   0   0   2
  not counted in November: a 停电 重复件 (duplicate_of_id), a 停电 at 2026-11-30T16:30Z (December
  locally)

By hand, November: total 15 = 7 + 6 + 2. Keywords: 营业执照 7, 停电 6, 噪音 2, 水电气 1 (the
transcript's spotted word). Rise score (n + 1) ÷ (avg of Aug–Oct + 1): 营业执照 8 ÷ 6 = 1.333 (not
rising), 停电 7 ÷ 2 = 3.5 (rising: 6 ≥ min_volume 5), 噪音 3 ÷ 1 = 3 but 2 < 5 (not rising).
Categories: government 7, enterprise 6 (rising, 3.5), complaint 2. Departments: SCJG 7, GDGS 6.
Handling time of 营业执照 in November: 24 h. Its satisfaction: 1 of 2 ratings in force = 0.5.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlmodel import select

from config.database import session_scope
from ticketing import (
    Evaluation,
    HotspotQuery,
    SubOrder,
    Ticket,
    TicketEvent,
    hotspot_report,
    hotspot_tickets,
    index_all,
    index_transcript,
    month_bounds,
    sync_departments,
)
from ticketing.hotspots.models import TicketKeyword

TEXT = {
    "营业执照": (
        "营业执照",
        "你好，请问那个营业执照怎么办，我想问一下",
        "government",
        "SCJG",
        "hotline",
    ),
    "停电": ("停电", "你好，请问那个停电了，我想问一下", "enterprise", "GDGS", "hotline"),
    "噪音": ("噪音", "喂，你好，那个噪音", "complaint", None, "web"),
}
MONTH_MID = {
    8: datetime(2026, 8, 15, 2),
    9: datetime(2026, 9, 15, 2),
    10: datetime(2026, 10, 15, 2),
}
NOV = datetime(2026, 11, 10, 2)


def _ticket(s, word: str, at: datetime, **extra) -> Ticket:
    title, content, category, dept, channel = TEXT[word]
    t = Ticket(
        number=f"T-{uuid.uuid4().hex[:12]}",
        channel=channel,
        title=extra.pop("title", title),
        content=extra.pop("content", content),
        category=category,
        status="dispatched",
        created_by="test",
        created_at=at,
        **extra,
    )
    s.add(t)
    s.flush()
    if dept:
        s.add(SubOrder(ticket_id=t.id, department_code=dept, dispatched_at=at))
    return t


@pytest.fixture
def loaded(engine, settings):
    with session_scope(engine) as s:
        sync_departments(s, settings)
        for at in MONTH_MID.values():
            for _ in range(5):
                _ticket(s, "营业执照", at)
            _ticket(s, "停电", at)
        for i in range(7):
            t = _ticket(s, "营业执照", NOV + timedelta(hours=i))
            t.resolved_at = t.created_at + timedelta(hours=24)
            if i == 0:
                s.add(
                    Evaluation(
                        ticket_id=t.id,
                        round=1,
                        process="satisfied",
                        timeliness="satisfied",
                        result="satisfied",
                        overall="satisfied",
                    )
                )
            if i == 1:
                s.add(
                    Evaluation(
                        ticket_id=t.id,
                        round=1,
                        process="unsatisfied",
                        timeliness="unsatisfied",
                        result="unsatisfied",
                        overall="unsatisfied",
                    )
                )
            if i == 2:  # a staff rating the submitter's own superseded: not in force
                s.add(
                    Evaluation(
                        ticket_id=t.id,
                        round=1,
                        process="unsatisfied",
                        timeliness="unsatisfied",
                        result="unsatisfied",
                        overall="unsatisfied",
                        source="staff",
                        superseded=True,
                    )
                )
        first = _ticket(s, "停电", datetime(2026, 10, 31, 16, 30))  # Nov 1st 00:30 local
        for i in range(4):
            _ticket(s, "停电", NOV + timedelta(days=1, hours=i))
        heard = _ticket(s, "停电", NOV + timedelta(days=2), title="来电", content="你好 请问一下")
        s.add(
            TicketEvent(
                ticket_id=heard.id,
                actor="asr",
                action="transcript_attached",
                detail={"text": "喂 你好 那个 我们 这里 停电 了", "keywords": ["水电气"]},
            )
        )
        _ticket(s, "停电", NOV + timedelta(days=3), duplicate_of_id=first.id)  # 重复件
        _ticket(s, "停电", datetime(2026, 11, 30, 16, 30))  # Dec 1st 00:30 local
        for i in range(2):
            _ticket(s, "噪音", NOV + timedelta(days=4, hours=i))
        index_all(s, settings)
    return engine


def _report(engine, settings, **kw):
    with session_scope(engine, read_only=True) as s:
        return hotspot_report(s, settings, HotspotQuery(month="2026-11", **kw))


def test_month_bounds_are_shanghai_months(settings):
    assert month_bounds(settings, "2026-11") == (
        datetime(2026, 10, 31, 16, 0),
        datetime(2026, 11, 30, 16, 0),
    )
    assert month_bounds(settings, "2026-12")[1] == datetime(2026, 12, 31, 16, 0)


def test_top_lists_and_rising_topic(loaded, settings):
    r = _report(loaded, settings)
    assert r.months == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
    assert r.total == 15
    assert [t.count for t in r.totals] == [0, 0, 6, 6, 6, 15]
    assert [(t.key, t.count) for t in r.keywords] == [
        ("营业执照", 7),
        ("停电", 6),
        ("噪音", 2),
        ("水电气", 1),
    ]
    kw = {t.key: t for t in r.keywords}
    assert (kw["营业执照"].baseline, kw["营业执照"].score, kw["营业执照"].rising) == (
        5.0,
        1.333,
        False,
    )
    assert (kw["停电"].baseline, kw["停电"].score, kw["停电"].rising) == (1.0, 3.5, True)
    assert (kw["噪音"].score, kw["噪音"].rising) == (3.0, False)  # below min_volume
    assert kw["停电"].direction == "up" and kw["营业执照"].direction == "flat"
    assert [t.key for t in r.rising] == ["停电"]
    assert [m.count for m in kw["停电"].trend] == [0, 0, 1, 1, 1, 6]
    assert kw["营业执照"].avg_hours == 24.0 and kw["营业执照"].satisfaction == 0.5
    assert kw["停电"].avg_hours is None and kw["停电"].satisfaction is None

    cats = {t.key: t for t in r.categories}
    assert [(t.key, t.count) for t in r.categories] == [
        ("government", 7),
        ("enterprise", 6),
        ("complaint", 2),
    ]
    assert cats["enterprise"].rising and not cats["government"].rising
    assert cats["government"].avg_hours == 24.0 and cats["government"].satisfaction == 0.5
    assert [(t.key, t.count) for t in r.departments] == [("SCJG", 7), ("GDGS", 6)]
    assert r.heat == {"SCJG": {"government": 7}, "GDGS": {"enterprise": 6}}
    assert r.unindexed == 0


def test_stop_words_never_become_keywords(loaded):
    with session_scope(loaded, read_only=True) as s:
        words = set(s.exec(select(TicketKeyword.word)).all())
    assert {"营业执照", "停电", "噪音", "水电气"} <= words
    assert not words & {"你好", "请问", "我想", "那个", "一下", "喂", "这里", "我们"}


def test_filters(loaded, settings):
    r = _report(loaded, settings, channel="web")
    assert r.total == 2 and [(t.key, t.count) for t in r.keywords] == [("噪音", 2)]
    r = _report(loaded, settings, category="enterprise")
    assert r.total == 6 and [t.key for t in r.keywords] == ["停电", "水电气"]


def test_drill_down_counts_duplicates_once_and_follows_the_local_month(loaded, settings):
    with session_scope(loaded, read_only=True) as s:
        total, rows = hotspot_tickets(s, settings, HotspotQuery(month="2026-11"), keyword="停电")
        assert total == 6 and len(rows) == 6
        assert all(t.duplicate_of_id is None for t in rows)
        assert datetime(2026, 10, 31, 16, 30) in {t.created_at for t in rows}
        assert datetime(2026, 11, 30, 16, 30) not in {t.created_at for t in rows}
        total, _ = hotspot_tickets(s, settings, HotspotQuery(month="2026-11"), department="SCJG")
        assert total == 7
        dec, _ = hotspot_tickets(s, settings, HotspotQuery(month="2026-12"), keyword="停电")
        assert dec == 1


def test_a_transcript_attached_later_adds_its_words(loaded, settings):
    with session_scope(loaded) as s:
        t = s.exec(select(Ticket).where(Ticket.title == "噪音")).first()
        index_transcript(s, settings, t.id, {"text": "楼下 噪音 扰民", "keywords": ["投诉"]})
        index_transcript(s, settings, t.id, {"text": "楼下 噪音 扰民", "keywords": ["投诉"]})
    r = _report(loaded, settings)
    kw = {k.key: k.count for k in r.keywords}
    assert kw["投诉"] == 1 and kw["噪音"] == 2


def test_bad_month_is_refused(loaded, settings):
    from ticketing import InvalidInput

    with pytest.raises(InvalidInput), session_scope(loaded, read_only=True) as s:
        hotspot_report(s, settings, HotspotQuery(month="2026-13"))


def test_a_running_month_is_compared_with_the_same_share_of_the_baseline(loaded, settings):
    """Half-way through November (15 of 30 days): 营业执照's baseline 5 a month becomes 2.5, so
    its 7 so far score (7 + 1) ÷ (2.5 + 1) = 2.286 and it rises; 停电 1 → 0.5: 7 ÷ 1.5 = 4.667."""
    with session_scope(loaded, read_only=True) as s:
        r = hotspot_report(
            s, settings, HotspotQuery(month="2026-11"), now=datetime(2026, 11, 15, 16, 0)
        )
    assert r.elapsed == 0.5
    kw = {t.key: t for t in r.keywords}
    assert (kw["营业执照"].baseline, kw["营业执照"].score, kw["营业执照"].rising) == (
        2.5,
        2.286,
        True,
    )
    assert (kw["停电"].baseline, kw["停电"].score) == (0.5, 4.667)
    assert [t.key for t in r.rising] == ["停电", "营业执照"]


def test_months_are_kept_and_read_back_until_stale(loaded, settings):
    from ticketing.hotspots import refresh_cache, save_months
    from ticketing.hotspots.models import HotspotMonth

    first = _report(loaded, settings)
    assert sorted(first.computed) == [
        "2026-06",
        "2026-07",
        "2026-08",
        "2026-09",
        "2026-10",
        "2026-11",
    ]
    with session_scope(loaded) as s:
        assert save_months(s, first) == 6
    again = _report(loaded, settings)
    assert again.computed == {}
    assert [(t.key, t.count, t.score) for t in again.keywords] == [
        (t.key, t.count, t.score) for t in first.keywords
    ]
    assert again.heat == first.heat and again.totals == first.totals
    # a month cached before it closed is recomputed once it has
    with session_scope(loaded) as s:
        row = s.get(HotspotMonth, ("2026-11", "", ""))
        row.computed_at = datetime(2026, 11, 20)
        s.add(row)
    assert list(_report(loaded, settings).computed) == ["2026-11"]
    # the scheduler's refresh: the unfiltered months of the year that are not fresh
    now = datetime(2026, 12, 3)
    with session_scope(loaded, read_only=True) as s:
        assert s.get(HotspotMonth, ("2026-12", "", "")) is None
    assert refresh_cache(lambda: session_scope(loaded), settings, months=12, now=now) == 7
    assert refresh_cache(lambda: session_scope(loaded), settings, months=12, now=now) == 0
    later = now + timedelta(minutes=3)  # the running month (December) is stale after 2 minutes
    assert refresh_cache(lambda: session_scope(loaded), settings, months=12, now=later) == 1
    with session_scope(loaded, read_only=True) as s:
        dec = s.get(HotspotMonth, ("2026-12", "", ""))
        assert dec.data["total"][0] == 1  # the 停电 of 2026-11-30T16:30Z
