"""Mandarin post-processing without a model: space joining and inverse text normalisation."""

from __future__ import annotations

import pytest

from asr.textnorm import (
    DIGITS,
    cn_to_int,
    inverse_normalise,
    join_cjk_spaces,
    normalise,
    uscc_check_ok,
)

_SPOKEN = {str(v): k for k, v in DIGITS.items() if k in "零一二三四五六七八九"}


def spoken(code: str, sep: str = " ") -> str:
    """How Vosk's Chinese model writes a code read character by character."""
    return sep.join(_SPOKEN.get(c, c.lower()) for c in code)


def make_uscc(prefix17: str) -> str:
    for c in "0123456789ABCDEFGHJKLMNPQRTUWXY":
        if uscc_check_ok(prefix17 + c):
            return prefix17 + c
    raise AssertionError("no check character")


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("甚至 出现 交易 几乎 停滞 的 情况", "甚至出现交易几乎停滞的情况"),
        (
            "欢迎 大家 来 体验 达摩院 推出 的 语音 识别 模型",
            "欢迎大家来体验达摩院推出的语音识别模型",
        ),
        ("  你好   你好 ", "你好你好"),
        ("用 app 办理 ok 吗", "用 app 办理 ok 吗"),  # Latin words keep their spaces
        ("한국어 문장 입니다", "한국어 문장 입니다"),  # Hangul is not Han: untouched
        ("第 3 个", "第3个"),
    ],
)
def test_join_cjk_spaces(raw, expected):
    assert join_cjk_spaces(raw) == expected


@pytest.mark.parametrize(
    "text,value",
    [
        ("三万五千", 35000),
        ("三万五", 35000),
        ("两千五", 2500),
        ("一百五", 150),
        ("一百零五", 105),
        ("十", 10),
        ("十五", 15),
        ("二十五", 25),
        ("一千零一", 1001),
        ("一亿两千万", 120_000_000),
        ("十万零三百", 100_300),
        ("二零二五", 2025),
        ("两", 2),
    ],
)
def test_cn_to_int(text, value):
    assert cn_to_int(text) == value


@pytest.mark.parametrize("text", ["", "万", "百五", "五五十", "十十"])
def test_cn_to_int_rejects_non_numbers(text):
    assert cn_to_int(text) is None


@pytest.mark.parametrize(
    "raw,expected",
    [
        # phone numbers read digit by digit: 幺 = 1, 零/〇/洞 = 0, 两 = 2
        ("我 的 手机 号 是 幺 三 八 零 零 幺 三 八 零 零 零", "我的手机号是13800138000"),
        ("电话 幺 三 九 幺 二 三 四 五 六 七 八", "电话13912345678"),
        ("座机 〇 七 幺 五 八 八 八 八 两 两 两 两", "座机071588882222"),
        ("打 幺 二 三 四 五", "打12345"),
        # dates
        ("十一月二十五号 来 的", "11月25日来的"),
        ("二零二五年三月一日 开始", "2025年3月1日开始"),
        ("一九九八年", "1998年"),
        ("十三月五号", "十三月五号"),  # not a month: untouched
        # amounts
        ("罚款 三万五千元", "罚款35000元"),
        ("借 了 两千五 块钱", "借了2500元"),
        ("投资 五十 万元", "投资50万元"),
        ("三点五万元", "3.5万元"),
        ("一百零五元", "105元"),
        ("两万元", "2万元"),
        # left alone: idioms, measure words, small counts
        ("三五成群", "三五成群"),
        ("一一对应", "一一对应"),
        ("我们 一块儿 去", "我们一块儿去"),
        ("买 了 一块 地", "买了一块地"),
        ("三个 工作日", "三个工作日"),
        ("二十号", "二十号"),  # a bare day without a month is ambiguous (room number?): untouched
    ],
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


def test_uscc_read_aloud_with_valid_check_character():
    code = make_uscc("91420000MA4K3L2X8")
    text = normalise(f"统一 社会 信用 代码 是 {spoken(code)} 谢谢")
    assert text == f"统一社会信用代码是{code} 谢谢"
    # without the words 信用代码 it still converts because the check character is right
    assert normalise(spoken(code)) == code


def test_uscc_with_wrong_check_needs_context():
    code = make_uscc("91420000MA4K3L2X8")
    bad = code[:-1] + ("1" if code[-1] != "1" else "2")
    assert not uscc_check_ok(bad)
    # after 信用代码 the caller clearly read a code: convert (a human checks the digit later)
    assert normalise(f"信用代码 {spoken(bad)}").endswith(bad)
    # with no context and a wrong check: not a code; the digit run is still a number string
    out = normalise(spoken(bad))
    assert bad not in out


def test_uscc_checksum_known_good():
    assert uscc_check_ok("91350100M000100Y43")  # the GB 32100-2015 worked example
    assert not uscc_check_ok("91350100M000100Y44")
    assert not uscc_check_ok("91350100M000100Y4")


def test_inverse_normalise_is_idempotent():
    for raw in ["幺三八零零幺三八零零零", "十一月二十五号", "三万五千元"]:
        once = inverse_normalise(raw)
        assert inverse_normalise(once) == once
