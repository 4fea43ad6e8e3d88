"""Phone numbers: one E.164 form for every channel, so a caller is one Caller row however they typed it.

`phonenumbers` (libphonenumber's data) decides validity; CN is the default region, so
"138 1234 5678", "+86 138-1234-5678", "0086 13812345678" and "0715-1234567" (a landline with its
area code) all normalise. Full-width digits are folded to ASCII first (NFKC).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata

from ticketing.errors import InvalidInput

MAX_RAW_CHARS = 40


def normalise_phone(raw: str, region: str = "CN") -> str:
    """E.164 (e.g. "+8613812345678"), or InvalidInput with a message a caller understands."""
    if not isinstance(raw, str):
        raise InvalidInput("电话号码必须是文本", field="phone")
    return _normalise(raw, region)


def caller_phone(raw: str | None) -> str | None:
    """A caller ID as E.164, or None for an anonymous / withheld / junk one (no SMS, no callback
    number): the one rule of every telephony front (AMI bridge, Twilio, voicemail transcription)."""
    if not raw:
        return None
    try:
        return normalise_phone(raw)
    except InvalidInput:
        return None


# The usual hotline caller: a Chinese mobile number, typed plainly. libphonenumber's own pattern
# for CN mobiles (from the package's metadata, not written here) decides it in microseconds; the
# full parse (~0.15 ms, a tenth of an intake) handles everything else. tests/ticketing/
# test_phones.py holds the two equal over every 3-digit prefix.
_CN_META = PhoneMetadata.metadata_for_region("CN")  # the CN data ships with phonenumbers
_CN_PATTERN = _CN_META.mobile.national_number_pattern if _CN_META and _CN_META.mobile else None
if not _CN_PATTERN:
    raise RuntimeError("phonenumbers has no pattern for CN mobile numbers")
_CN_MOBILE = re.compile(_CN_PATTERN)
_PLAIN_MOBILE = re.compile(r"(?:\+86[ -]?)?(1\d{2})[ -]?(\d{4})[ -]?(\d{4})")


def is_mainland_mobile(e164: str | None) -> bool:
    """Whether an E.164 number is a mainland China mobile (+86 1xx…, libphonenumber's CN mobile
    pattern): the only numbers the public is texted at. International, landline, premium-rate and
    other service numbers get their notice on the page instead (SMS costs money per message and a
    form anyone can fill in must not send it anywhere)."""
    if not e164 or not e164.startswith("+86"):
        return False
    return _CN_MOBILE.fullmatch(e164[3:]) is not None


def _fast_cn_mobile(s: str) -> str | None:
    m = _PLAIN_MOBILE.fullmatch(s)
    if m is None:
        return None
    digits = "".join(m.groups())
    return "+86" + digits if _CN_MOBILE.fullmatch(digits) else None


@lru_cache(maxsize=8192)
def _normalise(raw: str, region: str) -> str:
    """Cached: callers ring again (refusals are not cached)."""
    s = unicodedata.normalize("NFKC", raw).strip()
    if region == "CN":
        fast = _fast_cn_mobile(s)
        if fast is not None:
            return fast
    return _parse(s, region)


def _parse(s: str, region: str) -> str:
    """The full parse and validation of an NFKC-folded, stripped number."""
    if not s:
        raise InvalidInput("电话号码为空", field="phone", rule="empty")
    if len(s) > MAX_RAW_CHARS:
        raise InvalidInput(
            f"电话号码过长（最多{MAX_RAW_CHARS}个字符）", field="phone", rule="length"
        )
    if not any(ch.isdigit() for ch in s):
        raise InvalidInput("电话号码中没有数字", field="phone", rule="format")
    try:
        num = phonenumbers.parse(s, region)
    except phonenumbers.NumberParseException as e:
        raise InvalidInput(
            "无法识别的电话号码，请输入手机号或带区号的固定电话",
            field="phone",
            rule="format",
            reason=str(e),
        ) from e
    if not phonenumbers.is_valid_number(num):
        raise InvalidInput(
            "电话号码无效，请核对位数和区号（手机号11位，固话需带区号）",
            field="phone",
            rule="invalid",
        )
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str | None) -> str:
    """ "+8613812341234" → "+86138****1234": enough to tell numbers apart in logs, not to call them."""
    if not e164:
        return ""
    s = str(e164)
    cc_len = 0
    if s.startswith("+"):
        try:
            cc = phonenumbers.parse(s, None).country_code
            cc_len = 1 + len(str(cc))
        except phonenumbers.NumberParseException:
            cc_len = 1
    head = s[: cc_len + 3]
    rest = s[cc_len + 3 :]
    if len(rest) <= 4:  # too short to show a tail safely
        return s[:cc_len] + "*" * max(len(s) - cc_len - 2, 0) + s[-2:]
    return head + "****" + rest[-4:]
