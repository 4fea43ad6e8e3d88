"""Issue #17 §3 (this part): the public form texts only mainland mobile numbers; every other
number gets its acceptance notice on the page, and no SMS is queued for it."""

from __future__ import annotations

import pytest
from console_helpers import make_client, seed
from sqlmodel import func, select

from config.database import session_scope
from ticketing.models import OutboxMessage
from ticketing.phones import is_mainland_mobile

FORM = {"channel": "web", "content": "园区停车难，请协调。"}


@pytest.mark.parametrize(
    ("phone", "texted"),
    [
        ("13912345678", True),
        ("+86 199 1234 5678", True),
        ("+8617012345678", True),  # 170: a mobile (MVNO) range
        ("0715-1234567", False),  # mainland landline
        ("+1 202 555 0143", False),  # international
        ("+44 7911 123456", False),  # international mobile
        ("+852 5123 4567", False),  # Hong Kong mobile: not mainland
        ("+44 909 8790879", False),  # premium rate
        ("+8640012345678", False),  # not a mobile pattern even if it parses
    ],
)
def test_only_mainland_mobiles_are_texted(settings, engine, phone, texted):
    seed(engine, settings)
    with make_client(settings) as c:
        r = c.post("/api/v1/public/tickets", json={**FORM, "submitter_phone": phone})
    if r.status_code == 422:  # a number the parser refuses altogether is not texted either
        assert not texted, r.text
        return
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sms_sent"] is texted
    assert body["notice"] and body["number"] in body["notice"]  # always on the page
    with session_scope(engine, read_only=True) as s:
        n = s.exec(select(func.count()).select_from(OutboxMessage)).one()
    assert n == (1 if texted else 0)


def test_is_mainland_mobile():
    assert is_mainland_mobile("+8613812345678")
    for e164 in ("+86715123456", "+12025550143", "+85251234567", "13812345678", "", None):
        assert not is_mainland_mobile(e164)
