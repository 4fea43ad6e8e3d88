"""Mandarin post-processing of Vosk output into what a ticket needs. Pure text, no model needed.

1. Join the spaces Vosk's Chinese models put between words ("甚至 出现 交易" → "甚至出现交易"),
   only where a Han character meets a Han character or a digit: Latin words keep their spaces and
   Hangul (the stand-in Korean model) is never touched.
2. Inverse text normalisation (ITN) of what callers read out:
   - 统一社会信用代码 read character by character (digits + letters) → "91420000MA4K…" when the run
     is 18 characters of the USCC alphabet and either its GB 32100-2015 check character is right or
     it follows the words 信用代码 / 代码 / 税号;
   - dates: 十一月二十五号 → 11月25日, 二零二五年三月一日 → 2025年3月1日;
   - amounts: 三万五千元 → 35000元, 两千五块钱 → 2500元, 五十万元 → 50万元, 三点五万元 → 3.5万元;
   - digit strings read one by one (phone numbers, years, house numbers): 幺三八零零幺三八零零零 →
     13800138000 (幺 = 1, 零/〇/洞 = 0, 两 = 2); at least 4 digits, or any run with 幺, so idioms
     like 三五成群 or 一一对应 stay as they are.
Everything else is left exactly as recognised (a wrong guess in a ticket is worse than no guess).
"""

from __future__ import annotations

import re

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_PUNCT = "\u3000-\u303f\uff00-\uffef"
_JOIN_RE = re.compile(
    rf"(?<=[{_HAN}{_CJK_PUNCT}0-9])\s+(?=[{_HAN}{_CJK_PUNCT}])|(?<=[{_HAN}{_CJK_PUNCT}])\s+(?=[0-9])"
)

DIGITS = {
    "零": 0, "〇": 0, "洞": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "三": 3,
    "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
_BIG_UNITS = (("亿", 10**8), ("万", 10**4))
_D = "零〇洞一幺二两三四五六七八九"
_NUM = _D + "十百千万亿"


def join_cjk_spaces(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return _JOIN_RE.sub("", text)


def _section(s: str) -> int | None:
    """A number below 10 000 written with 十百千 (and colloquial 两千五 = 2500, 一百五 = 150)."""
    if not s:
        return 0
    val, num, last_unit, zero_seen = 0, None, None, False
    for i, ch in enumerate(s):
        if ch in DIGITS:
            d = DIGITS[ch]
            if d == 0:
                zero_seen = True
                continue
            if num is not None:
                return None
            num = d
        elif ch in _SMALL_UNITS:
            u = _SMALL_UNITS[ch]
            if last_unit is not None and u >= last_unit:
                return None
            if num is None:
                if ch == "十" and i == 0:
                    num = 1
                else:
                    return None
            val += num * u
            num, last_unit, zero_seen = None, u, False
        else:
            return None
    if num is not None:
        if last_unit and last_unit >= 100 and not zero_seen:
            val += num * last_unit // 10
        else:
            val += num
    return val


def cn_to_int(s: str, _bigs: tuple[tuple[str, int], ...] = _BIG_UNITS) -> int | None:
    """Chinese numeral → int: 三万五千 35000, 三万五 35000, 一百零五 105, 二零二五 2025, 十一 11."""
    if not s:
        return None
    if all(ch in DIGITS for ch in s):
        return int("".join(str(DIGITS[ch]) for ch in s))
    for i, (ch, mult) in enumerate(_bigs):
        if ch in s:
            hi, lo = s.split(ch, 1)
            h = cn_to_int(hi, _bigs[i + 1 :]) if hi else None
            if h is None:
                return None
            lo = lo.lstrip("零〇")
            if len(lo) == 1 and lo in DIGITS and lo == s[len(hi) + 1 :]:
                low: int | None = DIGITS[lo] * mult // 10  # 三万五 = 35000
            else:
                low = cn_to_int(lo, _bigs[i + 1 :]) if lo else 0
            if low is None:
                return None
            return h * mult + low
    return _section(s)


def _digits(s: str) -> str:
    return "".join(str(DIGITS[c]) if c in DIGITS else c for c in s)


# --- 统一社会信用代码 -------------------------------------------------------------------------
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RUN = re.compile(rf"(?:[{_D}0-9A-Za-z][ \t]*){{17,}}[{_D}0-9A-Za-z]")
_USCC_CONTEXT = re.compile(r"(信用代码|代码|税号|执照号)[是为：:\s]*$")


def uscc_check_ok(code: str) -> bool:
    if len(code) != 18 or any(c not in _USCC_ALPHABET for c in code):
        return False
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31] == code[17]


def _uscc_sub(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        raw = m.group(0)
        code = _digits(re.sub(r"\s+", "", raw)).upper()
        if len(code) != 18 or any(c not in _USCC_ALPHABET for c in code):
            return raw
        if uscc_check_ok(code) or _USCC_CONTEXT.search(text[: m.start()]):
            return code
        return raw

    return _USCC_RUN.sub(repl, text)


# --- dates -----------------------------------------------------------------------------------
_DATE_RE = re.compile(
    rf"(?:(?P<y>[{_D}]{{4}}|\d{{4}})年)?(?P<m>[一二三四五六七八九十]{{1,3}}|\d{{1,2}})月"
    rf"(?P<d>[一二三四五六七八九十]{{1,3}}|\d{{1,2}})(?P<suffix>号|日)"
)


def _date_sub(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        month = int(m["m"]) if m["m"].isdigit() else cn_to_int(m["m"])
        day = int(m["d"]) if m["d"].isdigit() else cn_to_int(m["d"])
        if month is None or day is None or not (1 <= month <= 12 and 1 <= day <= 31):
            return m.group(0)
        year = ""
        if m["y"]:
            year = (m["y"] if m["y"].isdigit() else _digits(m["y"])) + "年"
        return f"{year}{month}月{day}日"

    return _DATE_RE.sub(repl, text)


# --- amounts ---------------------------------------------------------------------------------
_AMOUNT_RE = re.compile(
    rf"(?P<n>[{_NUM}]+?)(?:点(?P<f>[{_D}]+))?(?P<big>[万亿]?)(?P<u>元|块钱|块)(?P<next>.?)"
)


def _amount_sub(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        n, f, big, unit, nxt = m["n"], m["f"], m["big"], m["u"], m["next"]
        whole = cn_to_int(n)
        if whole is None:
            return m.group(0)
        if unit == "块" and (nxt in ("儿", "地") or (whole < 10 and not big and _is_han(nxt))):
            return m.group(0)  # 一块儿 (together), 一块地/一块砖: a measure word, not money
        value = f"{whole}.{_digits(f)}" if f else str(whole)
        # a trailing 万/亿 stays a unit, the formal written style: 五十万元 → 50万元, 3.5万元
        return f"{value}{big}元{nxt}"

    return _AMOUNT_RE.sub(repl, text)


def _is_han(ch: str) -> bool:
    return bool(ch) and bool(re.match(f"[{_HAN}]", ch))


# --- digit strings ---------------------------------------------------------------------------
_DIGIT_RUN = re.compile(rf"(?<![十百千万亿点{_D}])[{_D}]{{2,}}(?![十百千万亿点{_D}])")


def _digit_sub(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        run = m.group(0)
        if len(run) >= 4 or "幺" in run or "洞" in run:
            return _digits(run)
        return run

    return _DIGIT_RUN.sub(repl, text)


def inverse_normalise(text: str) -> str:
    for step in (_uscc_sub, _date_sub, _amount_sub, _digit_sub):
        text = step(text)
    return text


def normalise(text: str) -> str:
    """Vosk text → ticket text (spaces joined, then ITN)."""
    return inverse_normalise(join_cjk_spaces(text))
