"""Staff open a matter's attachment (from the public portal) on the ticket page: the same
visibility as the ticket (a handler of another department gets 404), served as a download with
the sniffed type, never rendered inline."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from agent_console.access import visible_ticket
from agent_console.web.core import PageNotFound, page_user
from agent_console.web.portal_upload import UPLOAD_DIR
from config.database import session_scope
from ticketing import NotFound, User

router = APIRouter(include_in_schema=False)


@router.get("/tickets/{number}/attachments/{file_id}", name="web.ticket_attachment")
def attachment(
    number: str, file_id: str, request: Request, user: User = Depends(page_user("web.ticket"))
) -> Response:
    state = request.app.state
    with session_scope(state.engine, read_only=True) as s:
        try:
            ticket = visible_ticket(s, user, number)
        except NotFound:
            raise PageNotFound(f"未找到工单：{number}") from None
        metas = (ticket.channel_data or {}).get("attachments") or []
    meta = next((m for m in metas if isinstance(m, dict) and m.get("id") == file_id), None)
    root = (Path(state.settings.data_dir) / UPLOAD_DIR).resolve()
    path = (root / str(meta["path"])).resolve() if meta else None
    if path is None or not path.is_relative_to(root) or not path.is_file():
        raise PageNotFound("附件不存在")
    name = quote(str(meta.get("name") or path.name)) if meta else path.name
    return FileResponse(
        path,
        media_type=str(meta.get("type") or "application/octet-stream") if meta else None,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
