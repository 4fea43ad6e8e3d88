"""Shared helpers of the API tests (a plain module: conftest modules can't be imported by name)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from agent_console import create_app
from agent_console.security import hash_password
from config.database import session_scope
from config.settings import Settings
from ticketing.departments import sync_departments
from ticketing.models import User

PASSWORD = "correct-horse-battery"
DEPT_A, DEPT_B = "SCJG", "SWJ"
# username -> (role, department)
USERS = {
    "admin": ("admin", None),
    "dispatcher": ("dispatcher", None),
    "agent": ("agent", None),
    "supervisor": ("supervisor", None),
    "handler": ("handler", DEPT_A),
    "handler_b": ("handler", DEPT_B),
    "leader": ("leader", None),
}
ROLES = ("admin", "dispatcher", "agent", "supervisor", "handler", "leader")


def seed(engine: Engine, settings: Settings) -> dict[str, int]:
    """Departments from config and one user per role; returns username -> id."""
    pw = hash_password(PASSWORD)  # one hash for all: argon2 is deliberately slow
    ids = {}
    with session_scope(engine) as s:
        sync_departments(s, settings)
        for name, (role, dept) in USERS.items():
            u = User(username=name, password_hash=pw, role=role, department_code=dept)
            s.add(u)
            s.flush()
            ids[name] = u.id
    return ids


@dataclass
class Api:
    client: TestClient
    settings: Settings
    engine: Engine
    user_ids: dict[str, int]
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        if username not in self._tokens:
            r = self.client.post(
                "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            self._tokens[username] = r.json()["access_token"]
        return self._tokens[username]

    def auth(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    def count(self, model) -> int:
        with session_scope(self.engine, read_only=True) as s:
            return s.exec(select(func.count()).select_from(model)).one()


def make_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)


def assert_error(r, status: int, code: str | None = None) -> dict:
    """The one error shape, with the expected status (and code)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def fresh_window(margin: float = 20.0, window: int = 60) -> None:
    """Rate limits use fixed windows: a test counting requests must not straddle a boundary, so
    start it early in a window (waits at most `margin` seconds; not a timing assertion)."""
    import time

    left = window - (time.time() % window)
    if left < margin:
        time.sleep(left + 0.05)


@contextmanager
def serve(app, **options: Any) -> Iterator[str]:
    """The app on a real uvicorn (its own thread and event loop) on a free 127.0.0.1 port;
    `options` for uvicorn.Config (e.g. Settings.proxy_options(), as `callcenter web` passes)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
