"""The departments' admin API (issue #18): create and change a department, the hand-off secret
accepted but never returned, routing keywords, refused to every other role."""

from __future__ import annotations

import pytest
from console_helpers import ROLES, Api

from ticketing.admin_settings import forget_cached_settings
from ticketing.routing import match_rule


@pytest.fixture(autouse=True)
def _fresh_cache():
    forget_cached_settings()
    yield
    forget_cached_settings()


def test_admin_creates_and_changes_a_department(api: Api):
    admin = {**api.auth("admin")}
    r = api.client.post(
        "/api/v1/departments",
        json={"code": "NYJ", "name": "农业农村局", "head_name": "局长",
              "handoff_secret": "x" * 24, "routing_keywords": ["农机补贴", "高标准农田"]},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["has_handoff_secret"] is True and "handoff_secret" not in body
    assert body["routing_keywords"] == ["农机补贴", "高标准农田"]
    assert match_rule(api.settings, "咨询农机补贴怎么申请").departments == ("NYJ",)
    r = api.client.patch(
        "/api/v1/departments/NYJ",
        json={"head_phone": "0715-5320000", "leaders": ["王副市长"], "handoff_secret": ""},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["head_phone"] == "+867155320000" and body["leaders"] == ["王副市长"]
    assert body["has_handoff_secret"] is False
    assert body["routing_keywords"] == ["农机补贴", "高标准农田"]
    r = api.client.patch("/api/v1/departments/NYJ", json={"head_phone": "1"}, headers=admin)
    assert r.status_code == 422 and "负责人电话" in r.json()["error"]["message"]
    r = api.client.post("/api/v1/departments", json={"code": "NYJ", "name": "x"}, headers=admin)
    assert r.status_code == 409
    assert api.client.patch("/api/v1/departments/NOPE", json={}, headers=admin).status_code == 404


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_other_roles_may_not_change_departments(api: Api, role: str):
    h = api.auth(role)
    assert (
        api.client.post(
            "/api/v1/departments", json={"code": "NYJ", "name": "x"}, headers=h
        ).status_code
        == 403
    )
    assert (
        api.client.patch("/api/v1/departments/SWJ", json={"name": "x"}, headers=h).status_code
        == 403
    )


def test_departments_are_listed_in_the_configured_order_not_by_code(api):
    """departments.yaml puts the bureaus most matters reach first and the towns last; by code,
    茶庵岭镇 (CAL…) and 车埠镇 came before 城市管理执法局 in every list people pick from."""
    from config.loader import load_yaml

    configured = [d["code"] for d in load_yaml(api.settings, "departments.yaml")["departments"]]
    r = api.client.get("/api/v1/departments", headers=api.auth("dispatcher"))
    assert r.status_code == 200
    listed = [d["code"] for d in r.json()]
    assert listed == configured  # a fresh install: nothing added by hand
    assert listed != sorted(listed)
