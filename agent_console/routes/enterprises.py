"""一企一档: an enterprise's file with all its tickets."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from agent_console.deps import SessionDep, TransactionRoute, require
from agent_console.errors import responses
from agent_console.schemas import EnterpriseFile, EnterpriseOut, TicketOut
from ticketing import User, enterprise_file

router = APIRouter(prefix="/enterprises", tags=["enterprises"], route_class=TransactionRoute)


@router.get(
    "/{uscc}",
    name="enterprises.get",
    response_model=EnterpriseFile,
    responses=responses(401, 403, 404, 422),
)
def get_enterprise(
    uscc: str, session: SessionDep, _: User = Depends(require("enterprises.get"))
) -> EnterpriseFile:
    """422 for a malformed code (check digit), 404 when no file exists."""
    ent, tickets = enterprise_file(session, uscc)
    return EnterpriseFile(
        enterprise=EnterpriseOut.model_validate(ent),
        tickets=[TicketOut.model_validate(t) for t in tickets],
    )
