"""The policy push's API (issue #12): an enterprise's profile (read, create/change) and 推送."""

from __future__ import annotations

import sys
from pathlib import Path

from console_helpers import Api, assert_error

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ticketing"))
from policy_helpers import policy, uscc

from config.database import session_scope
from ticketing.knowledge.models import ArticleStatus, PolicyPushRun


def _policy(api: Api, **kw) -> int:
    with session_scope(api.engine) as s:
        kw.setdefault("department_code", "SCJG")
        return policy(s, api.settings, **kw).id


def test_profile_put_and_get(api: Api):
    fits = _policy(api, industries=["C13"], size_bands=["小型"], regions=["车埠镇"])
    _policy(api, industries=["F52"])
    code = uscc(42)
    r = api.client.put(
        f"/api/v1/enterprises/{code}/profile",
        json={
            "name": "甲公司",
            "industry_code": "1311",
            "employees": 20,
            "revenue": 300,
            "region": "车埠镇",
            "tags": ["外贸"],
            "push_mobile": "13800001111",
        },
        headers=api.auth("dispatcher"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["industry_code"], body["size_band"]) == ("C1311", "small")
    assert [p["id"] for p in body["fitting_policies"]] == [fits]
    assert "push_mobile" not in body  # not given out
    assert api.count(PolicyPushRun) == 1
    # a field left out stays; one below the 工业 小型 limit is 微型, and the policy no longer fits
    r = api.client.put(
        f"/api/v1/enterprises/{code}/profile", json={"employees": 19}, headers=api.auth("admin")
    )
    assert r.json()["size_band"] == "micro" and r.json()["region"] == "车埠镇"
    assert r.json()["fitting_policies"] == []
    got = api.client.get(f"/api/v1/enterprises/{code}/profile", headers=api.auth("leader"))
    assert got.status_code == 200 and got.json()["employees"] == 19
    bad = api.client.put(
        f"/api/v1/enterprises/{code}/profile",
        json={"industry_code": "A13", "region": "北京"},
        headers=api.auth("dispatcher"),
    )
    err = assert_error(bad, 422)
    assert "门类" in err["message"]
    forbidden = api.client.put(
        f"/api/v1/enterprises/{code}/profile", json={}, headers=api.auth("agent")
    )
    assert_error(forbidden, 403)


def test_push_api(api: Api):
    pid = _policy(api)
    other = _policy(api, department_code="SWJ")
    draft = _policy(api, status=ArticleStatus.draft)
    r = api.client.post(f"/api/v1/knowledge/policies/{pid}/push", headers=api.auth("handler"))
    assert r.status_code == 202 and r.json()["article_id"] == pid
    r = api.client.post(f"/api/v1/knowledge/policies/{other}/push", headers=api.auth("handler"))
    assert_error(r, 403)
    r = api.client.post(f"/api/v1/knowledge/policies/{draft}/push", headers=api.auth("admin"))
    assert_error(r, 409, "not_in_force")
    r = api.client.post("/api/v1/knowledge/policies/999999/push", headers=api.auth("admin"))
    assert_error(r, 404)
    assert api.count(PolicyPushRun) == 1
