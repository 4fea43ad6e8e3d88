"""The agent console (role agent): the live calls of this agent, today's own figures."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from agent_console.web.core import page_user, render
from ticketing import User

router = APIRouter(include_in_schema=False)


@router.get("/console", name="web.console")
def console_page(request: Request, user: User = Depends(page_user("web.console"))) -> Response:
    return render(request, "console.html", {})
