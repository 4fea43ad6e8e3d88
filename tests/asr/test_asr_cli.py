"""`callcenter transcribe FILE... [--json]` with the real model (mounted the way callcenter/cli.py
will mount it), including a bad file among good ones."""

from __future__ import annotations

import json

import typer
from rec_testing import AUDIO, PBX_VOICEMAIL
from typer.testing import CliRunner

from asr.cli import transcribe


def app() -> typer.Typer:
    a = typer.Typer()
    a.command("transcribe")(transcribe)
    a.command("noop")(lambda: None)  # a second command so Typer keeps sub-command names
    return a


def test_transcribe_json_lines(ko_model, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLCENTER_ASR_MODEL_PATH", str(ko_model.path))
    from config.settings import get_settings

    get_settings.cache_clear()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"OggS" + b"\x00" * 64)
    files = [AUDIO / "wenet_nst_ID002.wav", PBX_VOICEMAIL, bad]
    r = CliRunner().invoke(app(), ["transcribe", "--json", *map(str, files)])
    get_settings.cache_clear()
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    assert r.exit_code == 1  # one file failed, the others were still done
    assert [x["file"] for x in lines] == [str(f) for f in files]
    for out in lines[:2]:
        assert set(out) >= {"file", "text", "duration_s", "rtf", "words"}
        assert out["words"] and all(
            {"word", "start", "end", "conf"} <= set(w) for w in out["words"]
        )
        assert out["words"][-1]["end"] <= out["duration_s"] + 0.05
    assert lines[1]["duration_s"] == 9.485
    assert "Ogg" in lines[2]["error"]


def test_transcribe_plain_text_and_explicit_model(ko_model):
    r = CliRunner().invoke(
        app(),
        ["transcribe", "--model", str(ko_model.path), str(AUDIO / "wenet_nst_ID001_nihao.wav")],
    )
    assert r.exit_code == 0, r.output
    name, _, text = r.stdout.strip().partition("\t")
    assert name.endswith("wenet_nst_ID001_nihao.wav") and text


def test_transcribe_without_model_says_what_to_do(monkeypatch):
    monkeypatch.delenv("CALLCENTER_ASR_MODEL_PATH", raising=False)
    from config.settings import get_settings

    get_settings.cache_clear()
    r = CliRunner().invoke(app(), ["transcribe", str(PBX_VOICEMAIL)])
    get_settings.cache_clear()
    assert r.exit_code == 2 and "download-model" in r.output
