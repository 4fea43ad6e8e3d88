"""Helpers of the page tests: log in through the login form, read the page's CSRF token."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from config.settings import Settings

PASSWORD = "correct-horse-battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
LOGIN_RE = re.compile(r'name="login_token" value="([^"]+)"')


@dataclass
class Web:
    client: TestClient
    settings: Settings
    engine: Engine
    user_ids: dict[str, int]

    def login(self, username: str, password: str = PASSWORD):
        """A fresh cookie jar, then the login form as a browser fills it in."""
        self.client.cookies.clear()
        page = self.client.get("/login")
        token = LOGIN_RE.search(page.text).group(1)
        return self.client.post(
            "/login",
            data={"username": username, "password": password, "login_token": token},
            follow_redirects=False,
        )

    def csrf(self, path: str = "/search") -> str:
        return CSRF_RE.search(self.client.get(path).text).group(1)
