"""统一社会信用代码 (unified social credit code) validation per GB 32100-2015.

Layout of the 18 characters:
  1     登记管理部门代码 (registration authority)
  2     机构类别代码 (organisation category)
  3-8   登记管理机关行政区划码 (6-digit administrative division code; digits only)
  9-17  主体标识码 = the 9-character organisation code of GB 11714 (8 body chars + its check char)
  18    check character: weights 3^(i-1) mod 31 over positions 1-17, C18 = 31 - (sum mod 31)

Why both checks: GB 32100 embeds a GB 11714 organisation code whose own check digit catches a
different set of typos; a code that fails either was mistyped (or made up).
"""

from __future__ import annotations

import unicodedata

from ticketing.errors import InvalidInput

# GB 32100 charset: digits and upper-case letters without I, O, S, V, Z (31 symbols, value = index).
CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(CHARSET)}
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, …

# GB 11714-1997 organisation code: 8 body chars (digits / A-Z, letter value = 10 + ordinal) + check.
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def normalise_uscc(code: str) -> str:
    """Full-width → half-width (NFKC), drop whitespace, upper-case."""
    if not isinstance(code, str):
        raise InvalidInput("统一社会信用代码必须是文本", field="enterprise_uscc")
    s = unicodedata.normalize("NFKC", code)
    return "".join(s.split()).upper()


def uscc_check_char(first17: str) -> str:
    """The 18th character for the given first 17 (which must use the GB 32100 charset)."""
    if len(first17) != 17 or any(c not in _VALUE for c in first17):
        raise ValueError("need 17 characters from the GB 32100 charset")
    total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def _org_value(c: str) -> int:
    if c.isdigit():
        return int(c)
    if "A" <= c <= "Z":
        return ord(c) - ord("A") + 10
    raise ValueError(f"invalid organisation-code character {c!r}")


def org_code_check_char(first8: str) -> str:
    """GB 11714 check character for an 8-character organisation-code body ('0'-'9' or 'X')."""
    if len(first8) != 8:
        raise ValueError("need 8 characters")
    total = sum(_org_value(c) * w for c, w in zip(first8, ORG_WEIGHTS, strict=True))
    c9 = 11 - total % 11
    return "0" if c9 == 11 else "X" if c9 == 10 else str(c9)


def build_uscc(
    org_body: str, *, authority: str = "9", category: str = "1", region: str = "421281"
) -> str:
    """A code with both check characters computed (for fixtures and tests; 421281 = 赤壁市)."""
    org = org_body + org_code_check_char(org_body)
    first17 = authority + category + region + org
    return first17 + uscc_check_char(first17)


def validate_uscc(code: str, *, check_org_code: bool = True) -> str:
    """Normalised code, or InvalidInput naming the rule that failed."""
    s = normalise_uscc(code)
    if not s:
        raise InvalidInput("统一社会信用代码为空", field="enterprise_uscc", rule="empty")
    if len(s) != 18:
        raise InvalidInput(
            f"统一社会信用代码应为18位，实际为{len(s)}位",
            field="enterprise_uscc",
            rule="length",
        )
    bad = sorted({c for c in s if c not in _VALUE})
    if bad:
        raise InvalidInput(
            f"统一社会信用代码含有不允许的字符：{''.join(bad)}（不使用 I、O、S、V、Z）",
            field="enterprise_uscc",
            rule="charset",
        )
    if not s[2:8].isdigit():
        raise InvalidInput(
            "统一社会信用代码第3-8位应为行政区划码（数字）",
            field="enterprise_uscc",
            rule="region",
        )
    expected = uscc_check_char(s[:17])
    if s[17] != expected:
        raise InvalidInput(
            "统一社会信用代码校验位错误，请核对后重新输入",
            field="enterprise_uscc",
            rule="check_digit",
        )
    if check_org_code:
        org = s[8:17]
        if org_code_check_char(org[:8]) != org[8]:
            raise InvalidInput(
                "统一社会信用代码中的组织机构代码（第9-17位）校验位错误",
                field="enterprise_uscc",
                rule="org_code_check_digit",
            )
    return s
