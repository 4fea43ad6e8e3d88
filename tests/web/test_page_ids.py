"""Every page route that names a row in its URL, as every role, with ids no row can have: a
refusal or the not-found page, never a 500 (a garbage probe of the form routes found /admin/users
answering 500 to a 22-digit id on SQLite, and "²" passing str.isdigit() into int())."""

from __future__ import annotations

import re

from console_helpers import USERS
from web_helpers import Web

from agent_console.web import ROUTERS

ID_PARAM = re.compile(r"{(\w*id)(?::\w+)?}")
IDS = ["1180591620717411303424", "2147483648", "0", "²", "１２"]


def _id_routes() -> list[tuple[str, set[str]]]:
    out = []
    for router in ROUTERS:
        for route in router.routes:
            if ID_PARAM.search(route.path):
                out.append((route.path, set(route.methods or ())))
    return out


def test_page_routes_answer_impossible_ids_without_a_server_error(web: Web):
    routes = _id_routes()
    assert len(routes) >= 15  # the finder still finds them (uid, suborder_id, article_id, …)
    failures: list[tuple] = []
    for username in USERS:
        home = web.login(username).headers["location"]
        csrf = web.csrf(home)  # the log-out form of every page carries it
        for path, methods in routes:
            for bad in IDS:
                url = re.sub(
                    r"{(\w+)(?::\w+)?}",
                    lambda m, bad=bad: bad if m.group(1).endswith("id") else "x",
                    path,
                )
                for method in sorted(methods & {"GET", "POST"}):
                    r = web.client.request(
                        method,
                        url,
                        data={"csrf_token": csrf} if method == "POST" else None,
                        follow_redirects=False,
                    )
                    if r.status_code >= 500:
                        failures.append((username, method, url, r.status_code))
    assert failures == []
