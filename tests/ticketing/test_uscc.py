"""USCC validation (GB 32100-2015 + the embedded GB 11714 organisation code)."""

from __future__ import annotations

import pytest

from ticketing.errors import InvalidInput
from ticketing.uscc import (
    CHARSET,
    WEIGHTS,
    build_uscc,
    org_code_check_char,
    uscc_check_char,
    validate_uscc,
)

# Published codes of well-known companies (and the standard's sample): both check characters of
# each are correct, which cross-checks the two algorithms against codes issued in the real world.
PUBLISHED = [
    "91350100M000100Y43",
    "914403001922038216",
    "9144030071526726XG",
    "91330100716105852F",
]


def test_weights_match_the_standard_table():
    assert WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    assert len(CHARSET) == 31 and not set("IOSVZ") & set(CHARSET)


@pytest.mark.parametrize("code", PUBLISHED)
def test_published_codes_are_valid(code):
    assert validate_uscc(code) == code


def test_normalises_full_width_lower_case_and_spaces():
    code = PUBLISHED[2]
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in code.lower())
    assert validate_uscc(f"  {full_width[:6]} {full_width[6:]}\t") == code


def test_build_uscc_makes_valid_codes():
    for body in ("12345678", "MA4ABCDE", "00000000", "7A8B9C0D"):
        code = build_uscc(body)
        assert len(code) == 18 and code.startswith("91421281")
        assert validate_uscc(code) == code


def test_every_single_character_substitution_is_caught():
    """Weights are non-zero mod the prime 31, so any one mistyped character changes the sum."""
    code = build_uscc("MA4ABCDE")
    for i in range(18):
        for c in CHARSET:
            if c == code[i]:
                continue
            bad = code[:i] + c + code[i + 1 :]
            rule = "region" if i in range(2, 8) and not c.isdigit() else "check_digit"
            with pytest.raises(InvalidInput) as ei:
                validate_uscc(bad, check_org_code=False)
            assert ei.value.details["rule"] == rule, (i, c)


@pytest.mark.parametrize(
    "code, rule",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("9142128112345678", "length"),
        ("91421281123456789XA", "length"),
        ("91421281I2345678X0", "charset"),
        ("91421281O2345678X0", "charset"),
        ("9142128-12345678X0", "charset"),
        ("91A2128112345678X0", "region"),
    ],
)
def test_malformed_codes_name_the_rule(code, rule):
    with pytest.raises(InvalidInput) as ei:
        validate_uscc(code)
    assert ei.value.details["rule"] == rule
    assert ei.value.status == 422 and ei.value.message


def test_wrong_check_digit_message():
    code = build_uscc("12345678")
    wrong = code[:17] + CHARSET[(CHARSET.index(code[17]) + 1) % 31]
    with pytest.raises(InvalidInput, match="校验位错误"):
        validate_uscc(wrong)


def test_organisation_code_check_is_enforced():
    body = "12345678"
    good_org = body + org_code_check_char(body)
    bad_c9 = "0" if good_org[8] != "0" else "1"
    first17 = "91421281" + body + bad_c9
    code = first17 + uscc_check_char(first17)  # outer check digit is fine
    with pytest.raises(InvalidInput) as ei:
        validate_uscc(code)
    assert ei.value.details["rule"] == "org_code_check_digit"
    assert validate_uscc(code, check_org_code=False) == code


def test_org_code_check_char_known_values():
    # GB 11714 example computed by hand: 3*1+7*2+9*3+10*4+5*5+8*6+4*7+2*8 = 201; 11 - 201 % 11 = 8
    assert org_code_check_char("12345678") == "8"
    assert org_code_check_char("71526726") == "X"  # Tencent's organisation code 71526726-X
    with pytest.raises(ValueError):
        uscc_check_char("123")


def test_non_string_is_rejected():
    with pytest.raises(InvalidInput):
        validate_uscc(914403001922038216)  # type: ignore[arg-type]
