"""Issue #18: the after-hours message the administrator edits is what an Asterisk caller hears.
The FastAGI server renders the edited text with espeak-ng (Mandarin) into the sounds folder as an
8 kHz mono WAV and asks Asterisk to play that file; with nothing edited, or when the text cannot be
rendered, Asterisk plays the recorded dxe/closed."""

from __future__ import annotations

import shutil
import wave
from collections.abc import AsyncIterator

import pytest
from ivr_testing import CLOSED
from test_ivr_agi import Clock, call

from config.database import session_scope
from config.settings import Settings
from ivr.agi import AgiServer
from ivr.tts import RATE, TtsUnavailable, prompt_name, render_wav, spoken_prompt
from ticketing.admin_settings import BUSINESS_HOURS, write_setting

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)"
)
MESSAGE = "您好，赤壁店小二专线已下班。请留言，我们将于{callback}给您回电。"
SPOKEN = "您好，赤壁店小二专线已下班。请留言，我们将于11月26日（星期四）08:30给您回电。"


def _edit(engine, message: str) -> None:
    """What the admin hours page stores on save."""
    with session_scope(engine) as s:
        write_setting(
            s,
            BUSINESS_HOURS,
            {"periods": [["08:30", "12:00"], ["14:30", "17:30"]], "after_hours_message": message},
        )


@pytest.fixture
async def agi(settings: Settings, tmp_path) -> AsyncIterator[AgiServer]:
    st = settings.model_copy(update={"agi_sounds_dir": tmp_path / "sounds" / "zh"})
    srv = AgiServer(st, clock=Clock(CLOSED), host="127.0.0.1", port=0)
    await srv.start()
    yield srv
    await srv.close()


@needs_espeak
async def test_asterisk_plays_the_edited_after_hours_message(agi, engine):
    t = await call(agi)
    assert t.commands[-1] == 'STREAM FILE dxe/closed ""'  # nothing edited: the recording
    _edit(engine, MESSAGE)
    t = await call(agi)
    name = prompt_name(SPOKEN, "cmn")
    assert name.startswith("dxe/tts/")
    assert t.commands[-1] == f'STREAM FILE {name} ""'
    assert t.variables["IVR_RESULT"] == "voicemail"
    with wave.open(str(agi.settings.agi_sounds_dir / f"{name}.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        seconds = w.getnframes() / RATE
    assert 3 < seconds < 30  # a sentence, not silence
    _edit(engine, "您好，已下班，请于{callback}再来电。")  # edited again: the new wording
    t = await call(agi)
    assert t.commands[-1] not in (f'STREAM FILE {name} ""', 'STREAM FILE dxe/closed ""')
    assert t.commands[-1].startswith("STREAM FILE dxe/tts/")


async def test_the_recording_plays_when_the_text_cannot_be_rendered(settings, engine, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")  # the sounds folder cannot be created: nothing can be written
    st = settings.model_copy(update={"agi_sounds_dir": blocked / "zh"})
    srv = AgiServer(st, clock=Clock(CLOSED), host="127.0.0.1", port=0)
    await srv.start()
    try:
        _edit(engine, MESSAGE)
        t = await call(srv)
    finally:
        await srv.close()
    assert t.commands[-1] == 'STREAM FILE dxe/closed ""'
    assert t.variables["IVR_RESULT"] == "voicemail"


@needs_espeak
def test_rendering_is_once_per_wording(tmp_path):
    first = spoken_prompt(tmp_path, "您好，现在是非工作时间。", "cmn")
    path = tmp_path / f"{first}.wav"
    made = path.stat().st_mtime_ns
    assert spoken_prompt(tmp_path, "您好，现在是非工作时间。", "cmn") == first
    assert path.stat().st_mtime_ns >= made and len(list(path.parent.glob("*.wav"))) == 1
    assert not list(path.parent.glob("*.part"))
    with pytest.raises(TtsUnavailable):
        render_wav("您好", "no-such-voice")


def test_no_edit_no_rendering(tmp_path):
    """Without an edited message the engine asks for nothing to be spoken."""
    srv = AgiServer(Settings(agi_sounds_dir=tmp_path), clock=Clock(CLOSED), port=0)
    turn = srv.engine.start(CLOSED)
    assert [p.spoken for p in turn.prompts] == [False]
    assert not any(tmp_path.iterdir())
