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


def _run_cli(args: list[str], *, tty_stderr: bool) -> tuple[int, str, str]:
    """`callcenter transcribe …` as a user runs it: stdout to a pipe, stderr to a pseudo-terminal
    (a user's shell) or a pipe (a script)."""
    import os
    import pty
    import subprocess
    import sys
    from pathlib import Path

    cli = str(Path(sys.executable).parent / "callcenter")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env |= {"TERM": "xterm-256color", "COLUMNS": "100"}
    if not tty_stderr:
        r = subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=180)
        return r.returncode, r.stdout, r.stderr
    master, slave = pty.openpty()
    p = subprocess.Popen([cli, *args], env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end of the terminal
            break
        if not chunk:
            break
        err += chunk
    out = p.stdout.read().decode()
    p.wait(timeout=180)
    os.close(master)
    return p.returncode, out, err.decode(errors="replace")


def test_progress_bar_over_many_files_on_a_terminal_only(ko_model):
    files = [str(AUDIO / "wenet_nst_ID002.wav"), str(PBX_VOICEMAIL), str(PBX_VOICEMAIL)]
    args = ["transcribe", "--model", str(ko_model.path), *files]
    code, out, err = _run_cli(args, tty_stderr=True)
    assert code == 0, err[-2000:]
    assert "转写" in err and "3/3" in err, err[-2000:]  # the bar, counting files
    assert [line.split("\t")[0] for line in out.splitlines()] == files  # stdout: text only
    code, out, err = _run_cli(args, tty_stderr=False)
    assert code == 0 and "转写" not in err and "/3" not in err  # no bar into a pipe or a log
    assert len(out.splitlines()) == 3
