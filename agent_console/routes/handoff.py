"""Status callbacks from external handling systems (§12), authenticated by an HMAC-SHA256 signature
over "<X-DXE-Timestamp>." + the raw body in the X-DXE-Signature header ("sha256=<hex>"), with the
secret of the system the sub-order was handed off to; verified by ticketing.handoff."""

from __future__ import annotations

from fastapi import APIRouter, Header, Request
from starlette.concurrency import run_in_threadpool

from agent_console.deps import SessionDep, SettingsDep, TransactionRoute
from agent_console.errors import responses
from agent_console.schemas import SubOrderOut
from ticketing import handle_callback

router = APIRouter(prefix="/handoff", tags=["handoff"], route_class=TransactionRoute)

_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["suborder_id", "status"],
                    "properties": {
                        "suborder_id": {"type": "integer"},
                        "status": {"type": "string", "enum": ["accepted", "replied", "returned"]},
                        "ticket_number": {"type": "string"},
                        "external_ref": {"type": "string", "maxLength": 100},
                        "text": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/callback",
    name="handoff.callback",
    response_model=SubOrderOut,
    responses=responses(403, 404, 409, 413, 422),
    openapi_extra=_BODY_SCHEMA,
)
async def callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    x_dxe_signature: str | None = Header(default=None),
    x_dxe_timestamp: str | None = Header(default=None),
) -> SubOrderOut:
    """Apply an external system's status update to its sub-order: 403 on a bad signature, a
    timestamp outside the window, or a sub-order never handed off to the signing system."""
    body = await request.body()

    def apply() -> SubOrderOut:  # blocking DB work stays off the event loop
        so = handle_callback(session, settings, body, x_dxe_signature, x_dxe_timestamp)
        session.flush()
        out = SubOrderOut.model_validate(so)
        session.commit()  # in this thread: the transaction never spans a hop (deps.py)
        return out

    return await run_in_threadpool(apply)
