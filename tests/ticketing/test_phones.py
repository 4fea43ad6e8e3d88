"""Phone normalisation (phonenumbers, CN default) and masking."""

from __future__ import annotations

import pytest

from ticketing.errors import InvalidInput
from ticketing.phones import mask_phone, normalise_phone


@pytest.mark.parametrize(
    "raw, e164",
    [
        ("13812345678", "+8613812345678"),
        ("138 1234 5678", "+8613812345678"),
        ("138-1234-5678", "+8613812345678"),
        ("+86 138 1234 5678", "+8613812345678"),
        ("+86-13812345678", "+8613812345678"),
        ("0086 13812345678", "+8613812345678"),
        ("１３８１２３４５６７８", "+8613812345678"),  # full-width digits
        ("  13812345678\n", "+8613812345678"),
        ("0715-1234567", "+867151234567"),  # Xianning landline with area code
        ("(0715) 888 8888", "+867158888888"),
        ("010-12345678", "+861012345678"),  # Beijing landline
        ("+1 212 555 0100", "+12125550100"),  # foreign callers keep their country
    ],
)
def test_normalises(raw, e164):
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize(
    "raw, rule",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "format"),
        ("电话号码", "format"),
        ("12345", "invalid"),
        ("1381234567", "invalid"),  # 10 digits
        ("138123456789", "invalid"),  # 12 digits
        ("1" * 41, "length"),
        ("+999 1234", "format"),
    ],
)
def test_junk_is_rejected_with_a_rule(raw, rule):
    with pytest.raises(InvalidInput) as ei:
        normalise_phone(raw)
    assert ei.value.details["rule"] == rule
    assert ei.value.message


def test_non_string_is_rejected():
    with pytest.raises(InvalidInput):
        normalise_phone(13812345678)  # type: ignore[arg-type]


def test_mask_phone_hides_the_middle():
    assert mask_phone("+8613812341234") == "+86138****1234"
    masked = mask_phone("+867151234567")
    assert masked == "+86715****4567"
    assert "1234567" not in masked
    assert mask_phone("+12125550100") == "+1212****0100"
    assert mask_phone("") == "" and mask_phone(None) == ""
    short = mask_phone("+8612345")
    assert short.endswith("45") and "123" not in short
