"""The role matrix (agent_console.roles.ROLE_MATRIX), exhaustively: every route × every role.

allowed → anything but 401/403; denied → 403; no credentials → 401. Runs against one seeded app per
database backend (module scope), with fresh tokens minted per request so state changes made by
allowed calls (logout bumps token_version) never leak into the next case.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa
from console_helpers import DEPT_A, ROLES, make_client, seed
from sqlalchemy.engine import make_url
from sqlmodel import select

from agent_console.app import iter_routes
from agent_console.roles import PUBLIC_ROUTES, ROLE_MATRIX, WEB_PREFIX
from agent_console.security import issue_token
from callcenter.schema import upgrade
from config.database import make_engine, session_scope
from config.settings import Settings
from ticketing.models import SubOrder, User

ROUTES = sorted((route.name, path, sorted(route.methods)[0]) for path, route in iter_routes())
PROTECTED = [r for r in ROUTES if r[0] not in PUBLIC_ROUTES]
USERNAME = {r: r for r in ROLES}  # seed() names each role's user after the role (handler: DEPT_A)
USCC = "91350100M000100Y43"


def test_every_route_is_in_the_matrix_or_public_and_checks_its_own_entry():
    names = [r[0] for r in ROUTES]
    assert len(names) == len(set(names)), "route names must be unique"
    for name, path, _ in ROUTES:
        assert name in ROLE_MATRIX or name in PUBLIC_ROUTES, f"{path} ({name}) has no roles"
    api_rows = {n for n in ROLE_MATRIX if not n.startswith(WEB_PREFIX)}  # pages: tests/web
    assert api_rows <= set(names), "matrix rows without a route"
    for path, route in iter_routes():
        guards = [
            d.call.route_name for d in route.dependant.dependencies if hasattr(d.call, "route_name")
        ]
        if route.name in PUBLIC_ROUTES:
            assert guards == [], path
        else:
            assert guards == [route.name], (path, guards)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def matrix_app(request, tmp_path_factory, pg_admin_url, redis_server_url) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("roles")
    admin_engine = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'roles.db'}"
    else:
        if pg_admin_url is None:
            pytest.skip("PostgreSQL not reachable")
        name = f"cc_roles_{uuid.uuid4().hex[:8]}"
        admin_engine = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    ns = f"test-roles-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp / "var",
        database_url=url,
        redis_url=redis_server_url,
        redis_namespace=ns,
        secret_key="roles-test-key-long-enough-for-the-32-byte-rule",
        public_rate_limit_per_minute=100000,
    )
    engine = make_engine(url)
    ids = seed(engine, settings)
    with make_client(settings) as client:
        # a ticket dispatched to the handler's department, so handler paths resolve
        from ticketing.intake import submit
        from ticketing.schemas import TicketIn

        with session_scope(engine) as s:
            t = submit(
                s,
                TicketIn(
                    channel="web",
                    content="营业执照办理咨询",
                    submitter_phone="13812345678",
                    enterprise_uscc=USCC,
                    departments=[DEPT_A],
                ),
                settings=settings,
                actor="test",
            )
            number = t.number
            so = s.exec(select(SubOrder).where(SubOrder.ticket_id == t.id)).first()
        values = {
            "number": number,
            "suborder_id": str(so.id),
            "code": DEPT_A,
            "uscc": USCC,
            "user_id": str(ids["leader"]),
            "token": "no-such-token",
            "recording_id": "999999",  # none: allowed roles get 404, others 403
            "article_id": "999999",  # none: allowed roles get 404/422, others 403
            "action": "review",
            "escalation_id": "999999",  # none: allowed roles get 404, others 403
            "task_id": "999999",
            "indicator": "finish_on_time",
            "appeal_id": "999999",  # none: an admin gets 404 (or 422 for the empty body)
        }
        yield {"client": client, "engine": engine, "values": values, "settings": settings}
    engine.dispose()
    r = redis.Redis.from_url(redis_server_url)
    for key in r.scan_iter(match=f"{ns}*"):
        r.delete(key)
    r.close()
    if admin_engine is not None:
        with admin_engine.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


def _headers(env, role: str | None) -> dict[str, str]:
    if role is None:
        return {}
    with session_scope(env["engine"], read_only=True) as s:
        user = s.exec(select(User).where(User.username == USERNAME[role])).one()
    token, _ = issue_token(
        b"roles-test-key-long-enough-for-the-32-byte-rule", user.id, user.token_version, 600
    )
    return {"Authorization": f"Bearer {token}"}


def _call(env, method: str, path: str, role: str | None):
    url = re.sub(r"{(\w+)}", lambda m: env["values"][m.group(1)], path)
    kwargs = {"json": {}} if method in ("POST", "PATCH", "PUT") else {}
    return env["client"].request(method, url, headers=_headers(env, role), **kwargs)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "path", "method"), PROTECTED, ids=[r[0] for r in PROTECTED])
def test_role_matrix(matrix_app, name, path, method, role):
    r = _call(matrix_app, method, path, role)
    if role in ROLE_MATRIX[name]:
        assert r.status_code not in (401, 403), (name, role, r.status_code, r.text)
        assert r.status_code < 500, (name, role, r.text)
    else:
        assert r.status_code == 403, (name, role, r.status_code, r.text)
        if method != "HEAD":  # a HEAD answer has no body
            assert r.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(("name", "path", "method"), PROTECTED, ids=[r[0] for r in PROTECTED])
def test_unauthenticated_is_401(matrix_app, name, path, method):
    r = _call(matrix_app, method, path, None)
    assert r.status_code == 401, (name, r.status_code, r.text)
    if method != "HEAD":
        assert r.json()["error"]["code"] == "unauthorized"


def test_hotspot_analysis_is_for_leaders_supervisors_and_admins():
    """高频事项分析 (issue #12): the API rows and the page's row grant the same three roles."""
    for row in ("hotspots.report", "hotspots.tickets", "web.hotspots"):
        assert ROLE_MATRIX[row] == {"admin", "supervisor", "leader"}, row
