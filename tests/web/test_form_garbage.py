"""Every form on every page a role can reach, submitted with garbage in every field: a refusal, a
422 with the page, a redirect, never a 500. (A crawl like this found the holiday calendar's year
"²" and the login form's "１２３" token answering 500.) The public portal is crawled without a
session. Live streams and Excel exports are not followed."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from console_helpers import DEPT_A, USERS
from web_helpers import Web

GARBAGE = ["", "\x00", "\u200b", "a" * 5000, "-1", "1180591620717411303424", "²", "１２３", "1e309"]
MAX_PAGES = 60  # per role: every page kind is reached well within this
SKIP = ("/static", "/logout", "/api", "/docs", "/openapi")


class _Page(HTMLParser):
    """Links (href, hx-get) and forms (action or hx-post, method, field names) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: set[str] = set()
        self.forms: list[dict] = []
        self._form: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("href", "hx-get"):
            if a.get(key) and (tag == "a" or key == "hx-get"):
                self.links.add(a[key])
        if tag == "form":
            method = a.get("method") or ("post" if a.get("hx-post") else "get")
            self._form = {"action": a.get("action") or a.get("hx-post"), "method": method.upper()}
            self._form["fields"] = set()
            self.forms.append(self._form)
        elif a.get("hx-post"):
            self.forms.append({"action": a["hx-post"], "method": "POST", "fields": set()})
        if tag in ("input", "select", "textarea", "button") and self._form and a.get("name"):
            self._form["fields"].add(a["name"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def _crawl(web: Web, start: str) -> dict[tuple, str]:
    """(path, method, field names) -> the page the form is on."""
    seen: set[str] = set()
    queue, forms = [start], {}
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        r = web.client.get(url, follow_redirects=False)
        assert r.status_code < 500, (url, r.status_code)
        if r.status_code != 200 or "html" not in r.headers.get("content-type", ""):
            continue
        page = _Page()
        page.feed(r.text)
        for href in page.links:
            parts = urlsplit(urljoin(url, href))
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if (
                parts.netloc in ("", "testserver")
                and not path.startswith(SKIP)
                and not re.search(r"/(events|stream)$|export|\.xlsx", path)
            ):
                queue.append(path)
        for f in page.forms:
            path = urlsplit(urljoin(url, f["action"] or url)).path
            if not path.startswith(SKIP):
                forms.setdefault((path, f["method"], tuple(sorted(f["fields"]))), url)
    return forms


def test_every_form_of_every_role_takes_garbage_without_a_server_error(web: Web):
    from config.database import session_scope
    from ticketing import TicketIn, submit

    with session_scope(web.engine) as s:
        for i in range(2):
            ticket = TicketIn(
                channel="web", content=f"企业开办咨询 {i}", departments=[DEPT_A],
                submitter_phone="13800001111",
            )  # fmt: skip
            submit(s, ticket, settings=web.settings, actor="test")
    failures: list[tuple] = []
    forms_tried = 0
    # The admin goes last: its garbage deactivates users and resets their passwords (the crawl
    # reaches a user's page or not depending on set order), so a role crawled after it could not
    # log in.
    for user in [*(u for u in USERS if u != "admin"), None, "admin"]:
        web.client.cookies.clear()
        if user is None:
            start = "/portal"
        else:
            r = web.login(user)
            assert r.status_code == 303, (user, r.status_code, r.text[:300])
            start = r.headers["location"]
        for (path, method, names), page in _crawl(web, start).items():
            forms_tried += 1
            for bad in GARBAGE:
                text = web.client.get(page).text  # this session's tokens, fresh
                data = dict.fromkeys(names, bad)
                for token in ("csrf_token", "idempotency_key"):
                    m = re.search(rf'name="{token}" value="([^"]+)"', text)
                    if m and token in names:
                        data[token] = m.group(1)
                if method == "POST":
                    r = web.client.post(path, data=data, follow_redirects=False)
                else:
                    r = web.client.get(path, params=data, follow_redirects=False)
                if r.status_code >= 500:
                    failures.append((user, method, path, repr(bad)[:12], r.status_code))
    assert forms_tried >= 80  # the crawl reached the pages' forms
    assert failures == []
