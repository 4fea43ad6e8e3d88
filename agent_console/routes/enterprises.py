"""一企一档: an enterprise's file with all its tickets, and its profile for the policy push."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from agent_console.deps import SessionDep, SettingsDep, TransactionRoute, require
from agent_console.errors import responses
from agent_console.schemas import EnterpriseFile, EnterpriseOut, Instant, TicketOut
from ticketing import (
    InvalidInput,
    User,
    enterprise_file,
    local_today,
    matching_policies,
    save_profile,
    validate_profile,
)

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


class ProfileIn(BaseModel):
    """The profile fields to change (a field left out stays as it is; null clears it)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    industry_code: str | None = Field(
        default=None, max_length=8, description="GB/T 4754 代码，如 C1311（只写数字时按大类补门类）"
    )
    employees: int | None = Field(default=None, ge=0, le=10_000_000, description="从业人员（人）")
    revenue: float | None = Field(
        default=None, ge=0, le=1e12, allow_inf_nan=False, description="营业收入（万元）"
    )
    assets: float | None = Field(
        default=None, ge=0, le=1e12, allow_inf_nan=False, description="资产总额（万元）"
    )
    region: str | None = Field(default=None, max_length=50, description="赤壁市的镇、街道或园区")
    tags: list[str] | None = Field(default=None, max_length=30)
    push_mobile: str | None = Field(
        default=None, max_length=40, description="推送手机号（大陆手机）"
    )
    push_opt_out: bool | None = Field(default=None, description="不接收政策推送")


class PolicyRef(BaseModel):
    id: int
    title: str
    doc_number: str | None = None
    apply_until: date | None = None


class ProfileOut(BaseModel):
    uscc: str
    name: str
    industry_code: str | None = None
    employees: int | None = None
    revenue: float | None = None
    assets: float | None = None
    size_band: str | None = Field(default=None, description="large | medium | small | micro")
    region: str | None = None
    tags: list[str]
    push_opt_out: bool
    push_opt_out_at: Instant | None = None
    profile_updated_at: Instant | None = None
    fitting_policies: list[PolicyRef]


def _out(session: SessionDep, settings: SettingsDep, uscc: str) -> ProfileOut:
    ent, _ = enterprise_file(session, uscc)
    fits = matching_policies(session, ent.id or 0, local_today(settings))
    return ProfileOut(
        uscc=ent.uscc,
        name=ent.name,
        industry_code=ent.industry_code,
        employees=ent.employees,
        revenue=ent.revenue,
        assets=ent.assets,
        size_band=ent.size_band,
        region=ent.region,
        tags=list(ent.tags or []),
        push_opt_out=ent.push_opt_out,
        push_opt_out_at=ent.push_opt_out_at,
        profile_updated_at=ent.profile_updated_at,
        fitting_policies=[
            PolicyRef(
                id=a.id or 0, title=a.title, doc_number=a.doc_number, apply_until=a.apply_until
            )
            for a in fits
        ],
    )


@router.get(
    "/{uscc}/profile",
    name="enterprises.profile",
    response_model=ProfileOut,
    responses=responses(401, 403, 404, 422),
)
def get_profile(
    uscc: str,
    session: SessionDep,
    settings: SettingsDep,
    _: User = Depends(require("enterprises.profile")),
) -> ProfileOut:
    """The enterprise's profile, its derived size band and the in-force policies that fit it."""
    return _out(session, settings, uscc)


@router.put(
    "/{uscc}/profile",
    name="enterprises.profile_update",
    response_model=ProfileOut,
    responses=responses(401, 403, 404, 422),
)
def put_profile(
    uscc: str,
    body: ProfileIn,
    session: SessionDep,
    settings: SettingsDep,
    user: User = Depends(require("enterprises.profile_update")),
) -> ProfileOut:
    """Create or change the profile (a file is created when none exists); the size band is
    derived; a new or changed profile is told the policies that fit it (an SMS each, once)."""
    values: dict[str, str] = {"uscc": uscc}
    for key in body.model_fields_set:
        v = getattr(body, key)
        if key == "tags":
            values[key] = "，".join(v or [])
        elif key == "push_opt_out":
            values[key] = "是" if v else "否"
        else:
            values[key] = "" if v is None else str(v)
    row, errors = validate_profile(settings, values)
    if row is None:
        field, msg = errors[0]
        raise InvalidInput(msg, field=field, errors=[{"field": f, "msg": m} for f, m in errors])
    if body.push_opt_out is False:
        row.values["push_opt_out"] = False
    save_profile(session, settings, row, user.username)
    return _out(session, settings, row.uscc)
