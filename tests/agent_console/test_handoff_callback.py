"""POST /api/v1/handoff/callback: HMAC-signed status updates from external handling systems."""

from __future__ import annotations

import json
import time

import yaml
from console_helpers import DEPT_A, assert_error, make_client, seed

from config.settings import DEFAULTS_DIR
from ticketing.handoff import sign, system_secret
from ticketing.models import TicketEvent

SECRET = "handoff-shared-secret"


def _with_handoff_url(settings, tmp_path):
    """DEPT_A's sub-orders are handed off to its system (nothing listens: no worker runs)."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    depts = yaml.safe_load((DEFAULTS_DIR / "departments.yaml").read_text(encoding="utf-8"))
    for entry in depts["departments"]:
        if entry["code"] == DEPT_A:
            entry["handoff_url"] = "http://127.0.0.1:9/intake"
    (cfg / "departments.yaml").write_text(yaml.safe_dump(depts, allow_unicode=True), "utf-8")
    return settings.model_copy(update={"handoff_secret": SECRET, "config_dir": cfg})


def test_signed_callbacks_drive_the_suborder_and_bad_signatures_change_nothing(
    settings, engine, tmp_path
):
    s = _with_handoff_url(settings, tmp_path)
    seed(engine, s)
    with make_client(s) as c:
        login = c.post(
            "/api/v1/auth/login",
            json={"username": "dispatcher", "password": "correct-horse-battery"},
        )
        h = {"Authorization": f"Bearer {login.json()['access_token']}"}
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
        so = next(x["id"] for x in detail["suborders"] if x["department_code"] == DEPT_A)

        def post(payload: dict, signature: str | None = "auto", ts: str | None = None):
            body = json.dumps(payload).encode()
            ts = ts or str(int(time.time()))
            secret = system_secret(s, DEPT_A)
            sig = sign(secret, body, ts) if signature == "auto" else signature
            headers = {"content-type": "application/json", "X-DXE-Timestamp": ts}
            if sig is not None:
                headers["X-DXE-Signature"] = sig
            return c.post("/api/v1/handoff/callback", content=body, headers=headers)

        from console_helpers import Api

        api = Api(c, s, engine, {})
        events_before = api.count(TicketEvent)
        assert_error(post({"suborder_id": so, "status": "accepted"}, signature=None), 403)
        assert_error(post({"suborder_id": so, "status": "accepted"}, signature="sha256=00"), 403)
        # the deployment's shared secret signs for no system
        body = json.dumps({"suborder_id": so, "status": "accepted"}).encode()
        ts = str(int(time.time()))
        r = c.post(
            "/api/v1/handoff/callback",
            content=body,
            headers={"X-DXE-Timestamp": ts, "X-DXE-Signature": sign(SECRET.encode(), body, ts)},
        )
        assert_error(r, 403)
        # a capture from an hour ago cannot be replayed
        old = str(int(time.time()) - 3600)
        assert_error(
            post({"suborder_id": so, "status": "accepted"}, ts=old), 403, "stale_timestamp"
        )
        assert api.count(TicketEvent) == events_before
        assert_error(post({"suborder_id": so, "status": "teleported"}), 422)
        assert_error(post({"suborder_id": 999999, "status": "accepted"}), 404)
        # beyond the id column's range: PostgreSQL rejects the value (DataError) -> 422, not 500
        r = post({"suborder_id": 2**40, "status": "accepted"})
        assert r.status_code in (404, 422), r.text
        assert_error(r, r.status_code)
        r = post({"suborder_id": so, "status": "accepted", "external_ref": "EXT-1"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted" and r.json()["external_ref"] == "EXT-1"
        r = post({"suborder_id": so, "status": "replied", "text": "已在省平台办结"})
        assert r.status_code == 200 and r.json()["status"] == "replied"
        assert c.get(f"/api/v1/tickets/{t['number']}", headers=h).json()["status"] == "resolved"
