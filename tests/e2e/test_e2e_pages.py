"""Every page of every role's navigation in a real headless Chromium at 1366x768 against
`callcenter run`, as that role sees it: the page and each of its requests (scripts, styles, fonts,
htmx fragments, chart data) answer below 400, nothing is fetched from another host (an intranet has
no internet), no script error, no page wider than the window, a title, and every ticket number on
one line (a number broken at its hyphens in a narrow column is misread and mis-dictated)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlmodel import select

from config.database import make_engine, session_scope
from config.settings import Settings
from ticketing import SubOrder, TicketIn, dispatch_to_departments, submit

pytestmark = pytest.mark.e2e

ROLES = ["admin", "dispatcher", "agent", "supervisor", "handler", "leader"]

PAGE_CHECK = """() => ({
  title: document.title.trim(),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  nav: Array.from(document.querySelectorAll('nav.sidenav a[href]')).map(a => a.getAttribute('href')),
  broken: Array.from(document.querySelectorAll('a[href^="/tickets/"]'))
    .filter(a => /^[A-Z]+-\\d{8}-\\d+$/.test(a.textContent.trim()) && a.getClientRects().length > 1)
    .map(a => a.textContent.trim()),
})"""


@pytest.fixture(scope="module")
def tickets(server) -> None:
    """A matter left to the dispatch desk (too vague for the classifier) and two dispatched to the
    handler's department, so the lists have rows."""
    settings = Settings(
        data_dir=server.data_dir, redis_url=server.redis_url, redis_namespace=server.namespace
    )
    engine = make_engine(settings.resolved_database_url)
    matters = [
        ("嗯嗯那个就是想问一下", None),
        ("我公司营业执照要变更经营范围，不知道需要带什么材料", ["SCJG"]),
        ("企业开办网上申报一直提示失败，税务登记怎么办理", ["SCJG", "SWJ"]),
    ]
    try:
        for text, depts in matters:
            with session_scope(engine) as s:
                data = TicketIn(
                    channel="window", content=text, submitter_name="王女士",
                    submitter_phone="13812341234", channel_data={"window_no": "3号窗口"},
                )  # fmt: skip
                t = submit(s, data, settings=settings, actor="dispatcher")
                if depts and not s.exec(select(SubOrder).where(SubOrder.ticket_id == t.id)).all():
                    dispatch_to_departments(s, settings, t, depts, actor="dispatcher")
    finally:
        engine.dispose()


@pytest.mark.parametrize("username", ROLES)
def test_every_nav_page_loads_whole_from_this_server_and_fits(page_for, server, tickets, username):
    page = page_for(username)
    own = urlsplit(server.url).netloc
    seen: list[str] = []
    problems: list[str] = []
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    page.on(
        "request",
        lambda r: (
            urlsplit(r.url).scheme in ("http", "https", "ws", "wss")
            and urlsplit(r.url).netloc != own
            and problems.append(f"other host: {r.url}")
        ),
    )
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    nav = page.evaluate(PAGE_CHECK)["nav"]
    assert nav, username
    for path in nav:
        page.goto(server.url + path, wait_until="load")
        page.wait_for_timeout(700)  # htmx fragments and charts loading after the page
        found = page.evaluate(PAGE_CHECK)
        seen.append(path)
        if not found["title"] or found["title"].startswith("·"):
            problems.append(f"{path}: no title")
        if found["overflow"] > 1:
            problems.append(f"{path}: {found['overflow']}px wider than the window")
        if found["broken"]:
            problems.append(f"{path}: ticket number on two lines: {found['broken']}")
    assert problems == [], (username, seen)
