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


def test_the_mobile_fast_path_equals_the_full_parse():
    """phones._fast_cn_mobile (libphonenumber's CN mobile pattern) against phonenumbers' parse and
    validation, over every 3-digit prefix, typed plainly, spaced, dashed and with +86: the same
    E.164 where it answers, and where it does not (None), the full parse decides as before."""
    import random

    from ticketing.errors import InvalidInput
    from ticketing.phones import _fast_cn_mobile, _parse

    rng = random.Random(7)
    answered = 0
    for prefix in range(100, 200):
        for _ in range(20):
            d = f"{prefix}{rng.randrange(10**8):08d}"
            for typed in (
                d,
                f"{d[:3]} {d[3:7]} {d[7:]}",
                f"{d[:3]}-{d[3:7]}-{d[7:]}",
                f"+86{d}",
                f"+86 {d}",
                f"+86-{d[:3]}-{d[3:7]}-{d[7:]}",
            ):
                fast = _fast_cn_mobile(typed)
                try:
                    slow: str | None = _parse(typed, "CN")
                except InvalidInput:
                    slow = None
                if fast is not None:
                    answered += 1
                    assert fast == slow, typed
    assert answered > 5000  # the fast path does carry the usual caller
