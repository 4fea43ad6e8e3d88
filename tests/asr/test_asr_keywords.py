"""Keyword spotting over transcripts, and its hand-off to the real ticket classifier."""

from __future__ import annotations

import pytest

from asr.keywords import keyword_list, spot
from config.loader import ConfigError
from config.settings import Settings


@pytest.fixture
def st() -> Settings:
    return Settings()


def test_vocabulary_hits_in_text_order(st):
    hits = spot("我想 办 营业 执照 另外 出口 退税 一直 没 到账 我要 投诉", st)
    assert [h.word for h in hits] == ["营业执照", "退税", "投诉"]
    assert hits[0].department == "SCJG" and hits[1].department == "SWJ"
    assert hits[1].surface == "出口退税"  # the longer alias wins at the same place
    assert keyword_list(hits) == ["营业执照", "退税", "投诉"]


def test_department_names_and_short_forms(st):
    hits = spot("税务局的人让我去市场监督管理局，再找人社", st)
    words = [(h.word, h.department, h.tag) for h in hits]
    assert ("税务局", "SWJ", "department") in words
    assert ("市场监督管理局", "SCJG", "department") in words
    short = spot("找市场监督 问一下", st)
    assert [h.department for h in short] == ["SCJG"]


def test_no_hits_and_no_overlap(st):
    assert spot("今天天气很好", st) == []
    hits = spot("退税退税", st)
    assert len(hits) == 2 and keyword_list(hits) == ["退税"]


def test_hits_get_times_from_vosk_words(st):
    words = [
        {"word": "我", "start": 0.0, "end": 0.2},
        {"word": "办", "start": 0.2, "end": 0.4},
        {"word": "营业", "start": 0.5, "end": 0.9},
        {"word": "执照", "start": 0.9, "end": 1.4},
    ]
    (hit,) = spot("我 办 营业 执照", st, words=words)
    assert (hit.start_s, hit.end_s) == (0.5, 1.4)


def test_custom_keyword_file(tmp_path, st):
    (tmp_path / "keywords.yaml").write_text(
        "keywords:\n  - {word: 电梯故障, aliases: [电梯坏了], tag: safety}\n", encoding="utf-8"
    )
    custom = st.model_copy(update={"config_dir": tmp_path})
    hits = spot("小区电梯坏了三天", custom)
    assert [(h.word, h.tag) for h in hits] == [("电梯故障", "safety")]
    (tmp_path / "keywords.yaml").write_text("keywords: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"keywords\.yaml"):
        spot("x", custom)


def test_keywords_feed_the_ticket_classifier(st):
    from ticketing.classifier import get_classifier

    text = "我们公司的出口退税三个月了还没有到账"
    kws = keyword_list(spot(text, st))
    assert "退税" in kws
    pred = get_classifier().predict(text, keywords=kws)
    assert pred.category in {"enterprise", "government", "complaint"}
    assert 0.0 <= pred.confidence <= 1.0
