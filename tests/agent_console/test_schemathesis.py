"""Property-based run of the whole OpenAPI schema (schemathesis) with an admin token: no 5xx.

Bounded: MAX_EXAMPLES per operation (derandomized), so a backend takes well under two minutes.
Before each case the admin is made active/admin again and gets a fresh token, so a generated
PATCH /users/1 or POST /auth/logout cannot blind the rest of the run. Driven through schemathesis's
Python API (openapi.from_asgi + APIOperation.as_strategy) with hypothesis directly.
"""

from __future__ import annotations

import pytest
import schemathesis
from console_helpers import make_client, seed
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from sqlmodel import select

from agent_console.security import issue_token
from config.database import session_scope
from ticketing.models import User

MAX_EXAMPLES = 25


@pytest.fixture
def fuzz_env(settings, engine):
    seed(engine, settings)
    s = settings.model_copy(update={"public_rate_limit_per_minute": 100000})
    with make_client(s) as client:
        yield client, engine


def _admin_headers(client, engine) -> dict[str, str]:
    with session_scope(engine) as s:
        admin = s.exec(select(User).where(User.username == "admin")).one()
        admin.active, admin.role = True, "admin"
        s.add(admin)
        uid, version = admin.id, admin.token_version
    token, _ = issue_token(client.app.state.secret_key, uid, version, 600)
    return {"Authorization": f"Bearer {token}"}


def error_shape(ctx, response, case) -> None:
    """Every 4xx/5xx from the API answers the one error shape."""
    if response.status_code >= 400 and case.path.startswith("/api/v1") and case.method != "HEAD":
        # (a HEAD answer has no body by definition)
        body = response.json()
        assert set(body) == {"error"} and {"code", "message", "details"} == set(body["error"]), (
            response.status_code,
            body,
        )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(fuzz_env, mode):
    client, engine = fuzz_env
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures: list[str] = []
    operations = 0
    calls = [0]
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @hyp_settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            calls[0] += 1
            case.call_and_validate(
                headers=_admin_headers(client, engine), checks=[not_a_server_error, error_shape]
            )

        try:
            run()
        except Unsatisfiable:  # negative mode: nothing invalid to generate (no inputs)
            continue
        except Exception as e:  # collect every operation's failure, report them together
            failures.append(f"{operation.label}: {str(e)[:2000]}")
    assert operations >= 20
    print(f"schemathesis {mode.value}: {operations} operations, {calls[0]} calls")
    assert calls[0] >= 2 * operations if mode == GenerationMode.POSITIVE else calls[0] > 50
    assert not failures, "\n\n".join(failures)
