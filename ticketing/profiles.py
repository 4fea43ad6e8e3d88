"""Enterprise profiles on the 一企一档 file (issue #12 §20–21): what the policy matcher reads.

- `industry_code`: GB/T 4754-2017 code, canonical form = section letter + 0, 2, 3 or 4 digits
  ("C", "C13", "C131", "C1311"); digits alone get their section letter from the division.
- `size_band`: 大/中/小/微 derived from employees, revenue and assets by the statistical division
  rule (国家统计局 2017), thresholds in config/defaults/enterprise_size.yaml — `size_band` below is
  the one place that derives it.
- `region`: one of the towns/districts of 赤壁 listed in knowledge.yaml (`regions`), the list an
  article's targets are picked from too.
- `push_mobile`: a mainland mobile (ticketing.phones.is_mainland_mobile) or nothing.

`validate_profile` checks one row of input (a form or an import row) and returns every problem
as (field, Chinese message); `save_profile` writes one; `import_profiles` reads a CSV or xlsx file,
checks every row, and writes all of them or none (a file with a bad row changes nothing; the
report names each bad row, its field and what is wrong).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from config.loader import load_yaml
from config.settings import Settings
from ticketing.errors import InvalidInput
from ticketing.knowledge.models import SizeBand
from ticketing.models import Enterprise, utcnow
from ticketing.phones import is_mainland_mobile, normalise_phone
from ticketing.text import normalise_text
from ticketing.uscc import validate_uscc

# GB/T 4754-2017: section letter → its two-digit divisions.
SECTIONS: dict[str, tuple[int, int]] = {
    "A": (1, 5),
    "B": (6, 12),
    "C": (13, 43),
    "D": (44, 46),
    "E": (47, 50),
    "F": (51, 52),
    "G": (53, 60),
    "H": (61, 62),
    "I": (63, 65),
    "J": (66, 69),
    "K": (70, 70),
    "L": (71, 72),
    "M": (73, 75),
    "N": (76, 79),
    "O": (80, 82),
    "P": (83, 83),
    "Q": (84, 85),
    "R": (86, 90),
    "S": (91, 97),
    "T": (98, 98),
}
_CODE = re.compile(r"^([A-T])?(\d{2,4})?$")
BANDS = (SizeBand.large, SizeBand.medium, SizeBand.small)  # tried in this order; micro remains
INDICATORS = ("employees", "revenue", "assets")
FIELD_LABELS: dict[str, str] = {
    "uscc": "统一社会信用代码",
    "name": "企业名称",
    "industry_code": "行业代码",
    "employees": "从业人员",
    "revenue": "营业收入（万元）",
    "assets": "资产总额（万元）",
    "region": "所在镇街",
    "tags": "标签",
    "push_mobile": "推送手机号",
    "push_opt_out": "不接收推送",
}
# header words an import file may use for each field
_HEADERS: dict[str, str] = {
    **{v: k for k, v in FIELD_LABELS.items()},
    **{k: k for k in FIELD_LABELS},
    "营业收入": "revenue",
    "资产总额": "assets",
    "行业": "industry_code",
    "镇街": "region",
    "手机号": "push_mobile",
    "从业人数": "employees",
}
_TAG_SPLIT = re.compile(r"[,，、;；\s]+")
MAX_TAGS = 30
MAX_IMPORT_ROWS = 100_000


def section_of(division: int) -> str | None:
    for letter, (lo, hi) in SECTIONS.items():
        if lo <= division <= hi:
            return letter
    return None


def canonical_industry(raw: str) -> str:
    """ "C1311", "c 13", "1311" → "C1311"/"C13"/"C1311"; InvalidInput for anything else."""
    s = re.sub(r"\s+", "", raw or "").upper()
    m = _CODE.fullmatch(s)
    if not s or m is None:
        raise InvalidInput(
            "行业代码应为国民经济行业分类（GB/T 4754）代码，如 C、C13 或 C1311",
            field="industry_code",
        )
    letter, digits = m.group(1), m.group(2) or ""
    if digits:
        section = section_of(int(digits[:2]))
        if section is None:
            raise InvalidInput(f"行业代码 {s} 的大类 {digits[:2]} 不存在", field="industry_code")
        if letter and letter != section:
            raise InvalidInput(
                f"行业代码 {s} 的门类应为 {section}（大类 {digits[:2]} 属于门类 {section}）",
                field="industry_code",
            )
        letter = section
    return f"{letter}{digits}"


# ---------------------------------------------------------------- size bands
def _rules(settings: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cfg = load_yaml(settings, "enterprise_size.yaml")
    return list(cfg.get("rules") or []), dict(cfg.get("other") or {})


def size_rule(settings: Settings, industry_code: str | None) -> dict[str, Any]:
    """The division rule for this industry: the longest listed prefix of the code, else `other`."""
    rules, other = _rules(settings)
    best, best_len = other, -1
    for rule in rules:
        for prefix in rule.get("codes") or []:
            p = str(prefix)
            if industry_code and industry_code.startswith(p) and len(p) > best_len:
                best, best_len = rule, len(p)
    return best


def size_band(
    settings: Settings,
    industry_code: str | None,
    employees: int | None,
    revenue: float | None,
    assets: float | None,
) -> str | None:
    """大/中/小/微 by the statistical division rule, or None when an indicator the industry's
    rule needs is missing (no industry: the rule for 其他未列明行业). A band needs every
    indicator it lists at or above its lower limit; otherwise the enterprise falls one band."""
    rule = size_rule(settings, industry_code)
    have = {"employees": employees, "revenue": revenue, "assets": assets}
    needed = {k for band in BANDS for k in (rule.get(band.value) or {})}
    if any(have[k] is None for k in needed):
        return None
    for band in BANDS:
        limits = rule.get(band.value) or {}
        if limits and all(float(have[k] or 0) >= float(v) for k, v in limits.items()):
            return band.value
    return SizeBand.micro.value


# ---------------------------------------------------------------- one row
def regions(settings: Settings) -> list[str]:
    """The towns and districts of 赤壁 (knowledge.yaml `regions`: the articles' list too)."""
    return [str(r) for r in load_yaml(settings, "knowledge.yaml").get("regions") or []]


def split_tags(raw: str) -> list[str]:
    return list(dict.fromkeys(t for t in _TAG_SPLIT.split(raw or "") if t))


@dataclass
class ProfileRow:
    """One validated profile: the enterprise's code and the fields given (None = clear)."""

    uscc: str
    values: dict[str, Any] = field(default_factory=dict)


def _number(raw: str, label: str, *, integer: bool) -> tuple[float | int | None, str | None]:
    s = (raw or "").strip().replace(",", "").replace("，", "")
    if not s:
        return None, None
    try:
        v: float | int = int(s) if integer else float(s)
    except ValueError:
        return None, f"{label}应为{'整数' if integer else '数字'}"
    if v < 0 or v > 1e12 or v != v:  # also NaN
        return None, f"{label}不能为负数或过大"
    return v, None


def validate_profile(
    settings: Settings, data: dict[str, Any]
) -> tuple[ProfileRow | None, list[tuple[str, str]]]:
    """Check one row (values as text, keys as FIELD_LABELS). Only the keys present are set;
    an empty value clears that field, except 不接收推送, which only a 是 changes."""
    errors: list[tuple[str, str]] = []
    text = {
        k: normalise_text("" if v is None else str(v)) for k, v in data.items() if k in FIELD_LABELS
    }
    try:
        uscc = validate_uscc(text.get("uscc", ""))
    except InvalidInput as e:
        errors.append(("uscc", e.message))
        uscc = ""
    values: dict[str, Any] = {}
    if "name" in text:
        if len(text["name"]) > 200:
            errors.append(("name", "企业名称最多 200 字"))
        values["name"] = text["name"]
    if "industry_code" in text:
        try:
            values["industry_code"] = (
                canonical_industry(text["industry_code"]) if text["industry_code"] else None
            )
        except InvalidInput as e:
            errors.append(("industry_code", e.message))
    for key in INDICATORS:
        if key in text:
            v, msg = _number(text[key], FIELD_LABELS[key], integer=key == "employees")
            if msg:
                errors.append((key, msg))
            values[key] = v
    if "region" in text:
        if text["region"] and text["region"] not in regions(settings):
            errors.append(("region", f"所在镇街“{text['region'][:20]}”不是赤壁市的镇、街道或园区"))
        values["region"] = text["region"] or None
    if "tags" in text:
        tags = split_tags(text["tags"])
        if len(tags) > MAX_TAGS or any(len(t) > 50 for t in tags):
            errors.append(("tags", f"标签最多 {MAX_TAGS} 个，每个最多 50 字"))
        values["tags"] = tags
    if "push_mobile" in text:
        phone = None
        if text["push_mobile"]:
            try:
                phone = normalise_phone(text["push_mobile"])
            except InvalidInput:
                phone = None
            if phone is None or not is_mainland_mobile(phone):
                errors.append(("push_mobile", "推送手机号应为大陆手机号码"))
        values["push_mobile"] = phone
    if "push_opt_out" in text:
        word = text["push_opt_out"]
        if word in ("是", "1", "true", "True", "Y", "y", "yes"):
            values["push_opt_out"] = True
        elif word not in ("", "否", "0", "false", "False", "N", "n", "no"):
            errors.append(("push_opt_out", "不接收推送应填“是”或“否”"))
    if errors:
        return None, errors
    return ProfileRow(uscc, values), []


def save_profile(
    session: Session, settings: Settings, row: ProfileRow, actor: str, *, request_push: bool = True
) -> tuple[Enterprise, bool]:
    """Create or update the enterprise's file with this profile; derive its size band. A new
    profile or a change of what the matcher reads asks for the policies that fit it
    (ticketing.policy_push.request_enterprise_push). Returns (enterprise, created)."""
    ent = session.exec(select(Enterprise).where(Enterprise.uscc == row.uscc)).first()
    created = ent is None
    if ent is None:
        ent = Enterprise(uscc=row.uscc, name="")
    before = match_inputs(ent)
    now = utcnow()
    for key, value in row.values.items():
        if key == "push_opt_out":
            if value and not ent.push_opt_out:
                ent.push_opt_out, ent.push_opt_out_at = True, now
            elif not value and ent.push_opt_out:
                ent.push_opt_out, ent.push_opt_out_at = False, None
        elif key == "name":
            ent.name = value or ent.name
        else:
            setattr(ent, key, value)
    ent.size_band = size_band(settings, ent.industry_code, ent.employees, ent.revenue, ent.assets)
    ent.profile_updated_at, ent.profile_updated_by = now, actor[:64]
    session.add(ent)
    session.flush()
    if request_push and (created or match_inputs(ent) != before):
        from ticketing.policy_push import request_enterprise_push

        request_enterprise_push(session, settings, ent.id or 0, actor)
    return ent, created


def match_inputs(ent: Enterprise) -> tuple[Any, ...]:
    """What the matcher reads of a profile (a change asks for the fitting policies again)."""
    return (
        ent.industry_code,
        ent.size_band,
        ent.region,
        tuple(ent.tags or ()),
        ent.push_opt_out,
        ent.push_mobile,
    )


def profile_form(ent: Enterprise | None) -> dict[str, str]:
    """The profile as the edit form's text values."""
    if ent is None:
        return {}

    def num(v: float | int | None) -> str:
        if v is None:
            return ""
        return str(int(v)) if float(v).is_integer() else str(v)

    return {
        "uscc": ent.uscc,
        "name": ent.name or "",
        "industry_code": ent.industry_code or "",
        "employees": num(ent.employees),
        "revenue": num(ent.revenue),
        "assets": num(ent.assets),
        "region": ent.region or "",
        "tags": "，".join(ent.tags or []),
        "push_mobile": ent.push_mobile or "",
        "push_opt_out": "是" if ent.push_opt_out else "",
    }


# ---------------------------------------------------------------- import
@dataclass(frozen=True)
class RowError:
    row: int  # the file's row number (the header is row 1)
    field: str
    label: str
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _read_rows(filename: str, data: bytes) -> list[list[str]]:
    name = filename.lower()
    if name.endswith(".xlsx"):
        import openpyxl

        try:
            wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises many kinds for a damaged file
            raise InvalidInput("无法读取该 xlsx 文件", field="file") from e
        try:
            ws = wb.worksheets[0]
            return [
                ["" if c is None else _cell(c) for c in row]
                for row in ws.iter_rows(values_only=True)
            ]
        finally:
            wb.close()
    if name.endswith(".csv"):
        for enc in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise InvalidInput("CSV 文件应为 UTF-8 或 GBK 编码", field="file")
        return [list(r) for r in csv.reader(io.StringIO(text))]
    raise InvalidInput("只能导入 .csv 或 .xlsx 文件", field="file")


def _cell(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def import_profiles(
    session: Session, settings: Settings, filename: str, data: bytes, actor: str
) -> ImportReport:
    """Read a CSV or xlsx file of profiles (first row: headers, see FIELD_LABELS), check every row
    and write them all, or none when any row is bad (the report lists every problem)."""
    rows = _read_rows(filename, data)
    report = ImportReport()
    if not rows:
        report.errors.append(RowError(1, "file", "文件", "文件为空"))
        return report
    header = [_HEADERS.get(h.strip()) for h in rows[0]]
    if "uscc" not in header:
        report.errors.append(RowError(1, "uscc", FIELD_LABELS["uscc"], "缺少“统一社会信用代码”列"))
        return report
    if len(rows) - 1 > MAX_IMPORT_ROWS:
        report.errors.append(RowError(1, "file", "文件", f"一次最多导入 {MAX_IMPORT_ROWS} 行"))
        return report
    good: list[ProfileRow] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in raw):
            continue
        report.rows += 1
        values = {k: raw[i] if i < len(raw) else "" for i, k in enumerate(header) if k}
        row, errs = validate_profile(settings, values)
        for f, msg in errs:
            report.errors.append(RowError(n, f, FIELD_LABELS.get(f, f), msg))
        if row is not None:
            if row.uscc in seen:
                report.errors.append(
                    RowError(n, "uscc", FIELD_LABELS["uscc"], f"与第 {seen[row.uscc]} 行重复")
                )
            else:
                seen[row.uscc] = n
                good.append(row)
    if report.errors:
        return report
    codes = list(seen)
    existing: set[str] = set()
    for i in range(0, len(codes), 500):
        chunk = codes[i : i + 500]
        existing.update(
            session.exec(select(Enterprise.uscc).where(col(Enterprise.uscc).in_(chunk)))
        )
    for row in good:
        save_profile(session, settings, row, actor, request_push=False)
    report.updated = sum(1 for r in good if r.uscc in existing)
    report.created = len(good) - report.updated
    if good:  # every in-force policy goes to the imported enterprises it fits (once each)
        from ticketing.policy_push import request_push_of_all_policies

        request_push_of_all_policies(session, settings, actor)
    return report
