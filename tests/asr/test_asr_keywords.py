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


def test_spotted_words_reach_the_voicemail_ticket_for_its_classifier(
    engine, asr_settings, ko_model, tmp_path
):
    """The whole hand-off on real audio: the word list is config, the transcript is the real
    recogniser's, and the ticket carries the hits as channel_data["keywords"], which intake
    passes to the classifier. The Korean stand-in hears no Chinese vocabulary, so the list holds
    words it really recognises in the PBX voicemail, read from a first decoding at run time,
    never written here (all of them: Kaldi's feature dither lets a word or two differ between
    decodings of the same audio)."""
    from rec_testing import PBX_VOICEMAIL
    from sqlmodel import select

    from asr.jobs import process_recording, request_transcription
    from asr.models import Transcript
    from asr.transcribe import transcribe_file
    from config.database import session_scope
    from recordings.store import import_voicemail
    from ticketing.departments import sync_departments
    from ticketing.models import Ticket

    heard = sorted(
        {w.word for w in transcribe_file(ko_model, PBX_VOICEMAIL).words if len(w.word) > 1}
    )
    assert len(heard) >= 5
    cfg = tmp_path / "config"
    cfg.mkdir()
    entries = "".join(f"  - {{word: {w}, tag: heard}}\n" for w in heard)
    (cfg / "keywords.yaml").write_text(f"keywords:\n{entries}", encoding="utf-8")
    # every other policy file falls back to the bundled one
    st = asr_settings.model_copy(
        update={"config_dir": cfg, "redis_url": "redis://127.0.0.1:1/0"}  # outbox only
    )
    with session_scope(engine) as s:
        sync_departments(s, st)
        rid = import_voicemail(s, st, PBX_VOICEMAIL).recording.id
        request_transcription(s, st, rid)
    r = process_recording(engine, st, rid, ko_model)
    with session_scope(engine, read_only=True) as s:
        tr = s.exec(select(Transcript)).one()
        ticket = s.get(Ticket, r.ticket_id)
    hits = tr.keywords
    assert hits and {h["word"] for h in hits} <= set(heard)
    assert all(h["tag"] == "heard" and h["start_s"] <= h["end_s"] for h in hits)
    said = {(w["word"], w["start"], w["end"]) for w in tr.words}
    assert any((h["word"], h["start_s"], h["end_s"]) in said for h in hits)  # when it was said
    assert ticket.channel_data["keywords"] == list(dict.fromkeys(h["word"] for h in hits))
