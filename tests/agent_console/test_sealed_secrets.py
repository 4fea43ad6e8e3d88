"""Hand-off secrets are encrypted at rest (ticketing.sealed): the department row holds a Fernet
token under a key derived from the deployment's secret key, never the secret; signed callbacks
still verify with it; rows stored in plain text before keep working and are encrypted at start
(callcenter.run.prepare_database) or on the department's next save."""

from __future__ import annotations

import json
import time

from console_helpers import DEPT_A, Api, make_client, seed
from pydantic import SecretStr
from sqlalchemy import text
from test_handoff_callback import _with_handoff_url

from config.database import session_scope
from ticketing.departments import DepartmentEdit, update_department
from ticketing.handoff import sign, stored_secret
from ticketing.sealed import PREFIX, seal, seal_stored_secrets, unseal

PLAIN = "county-platform-secret-0001"


def _raw(engine) -> str | None:
    with session_scope(engine, read_only=True) as s:
        return (
            s.connection()
            .execute(text("SELECT handoff_secret FROM department WHERE code = :c"), {"c": DEPT_A})
            .scalar()
        )


def _set_raw(engine, value: str) -> None:
    with session_scope(engine) as s:
        s.connection().execute(
            text("UPDATE department SET handoff_secret = :v WHERE code = :c"),
            {"v": value, "c": DEPT_A},
        )


def _handed_off_suborder(api: Api) -> int:
    c, h = api.client, api.auth("dispatcher")
    t = c.post(
        "/api/v1/tickets",
        json={
            "channel": "window",
            "content": "食品经营许可证延续办理",
            "channel_data": {"window_no": "2"},
            "departments": [DEPT_A],
        },
        headers=h,
    ).json()
    detail = c.get(f"/api/v1/tickets/{t['number']}", headers=h).json()
    return next(x["id"] for x in detail["suborders"] if x["department_code"] == DEPT_A)


def _callback(api: Api, secret: str, payload: dict):
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "X-DXE-Timestamp": ts,
        "X-DXE-Signature": sign(secret.encode(), body, ts),
    }
    return api.client.post("/api/v1/handoff/callback", content=body, headers=headers)


def test_the_column_holds_no_plaintext_and_callbacks_verify(settings, engine, tmp_path):
    s = _with_handoff_url(settings, tmp_path)
    seed(engine, s)
    with make_client(s) as c:
        api = Api(c, s, engine, {})
        r = c.patch(
            f"/api/v1/departments/{DEPT_A}",
            json={"handoff_secret": PLAIN},
            headers=api.auth("admin"),
        )
        assert r.status_code == 200 and r.json()["has_handoff_secret"] is True
        raw = _raw(engine)
        assert raw is not None and raw.startswith(PREFIX) and PLAIN not in raw
        with session_scope(engine, read_only=True) as ss:
            assert stored_secret(ss, s, DEPT_A) == PLAIN
        so = _handed_off_suborder(api)
        r = _callback(api, "some-other-secret-value", {"suborder_id": so, "status": "accepted"})
        assert r.status_code == 403
        r = _callback(api, PLAIN, {"suborder_id": so, "status": "accepted"})
        assert r.status_code == 200, r.text
        # the same secret sealed twice gives two tokens (a fresh IV each time)
        assert seal(s, PLAIN) != seal(s, PLAIN)


def test_old_plaintext_rows_work_and_are_encrypted(settings, engine, tmp_path):
    s = _with_handoff_url(settings, tmp_path)
    seed(engine, s)
    _set_raw(engine, PLAIN)  # stored before encryption at rest
    with make_client(s) as c:
        api = Api(c, s, engine, {})
        so = _handed_off_suborder(api)
        r = _callback(api, PLAIN, {"suborder_id": so, "status": "accepted"})
        assert r.status_code == 200, r.text
        with session_scope(engine) as ss:  # what `callcenter run` does at start
            assert seal_stored_secrets(ss, s) == 1
            assert seal_stored_secrets(ss, s) == 0
        raw = _raw(engine)
        assert raw is not None and raw.startswith(PREFIX) and PLAIN not in raw
        r = _callback(api, PLAIN, {"suborder_id": so, "status": "replied", "text": "已办结"})
        assert r.status_code == 200, r.text
    _set_raw(engine, PLAIN)
    with session_scope(engine) as ss:  # the next save, even one that leaves the secret alone
        update_department(ss, DEPT_A, DepartmentEdit(head_name="王局长"), by="admin", settings=s)
    raw = _raw(engine)
    assert raw is not None and raw.startswith(PREFIX) and unseal(s, raw) == PLAIN


def test_another_secret_key_cannot_read_it(settings):
    sealed = seal(settings, PLAIN)
    other = settings.model_copy(update={"secret_key": SecretStr("another-deployment-" + "k" * 24)})
    assert unseal(settings, sealed) == PLAIN
    assert unseal(other, sealed) is None
    assert unseal(settings, None) is None and unseal(settings, "legacy-plain") == "legacy-plain"
