"""Prompts that exist only as text (the after-hours message the administrator edits) spoken for
Asterisk: espeak-ng's Mandarin voice renders the text once per distinct wording into the Asterisk
sounds folder as the 8 kHz mono 16-bit WAV Asterisk plays, named by the text's hash. The FastAGI
server runs on the Asterisk host (config/asterisk/README.md), so the file it writes is the file
Asterisk reads. When the text cannot be rendered (no espeak-ng, folder not writable) the caller
gets the recorded prompt instead, and the log says why."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import subprocess
import tempfile
import time
import wave
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FOLDER = "dxe/tts"  # under the sounds folder; the name Asterisk is asked to play starts with it
RATE = 8000  # Asterisk's plain .wav: 8 kHz mono signed 16-bit
KEEP_DAYS = 7  # renderings not used for this long are removed (the wording moved on)
TIMEOUT_S = 20


class TtsUnavailable(RuntimeError):
    """The text could not be rendered (the reason is the message)."""


def prompt_name(text: str, voice: str) -> str:
    """The sound's name as Asterisk plays it (no extension), one per wording and voice."""
    digest = hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()[:20]
    return f"{FOLDER}/{digest}"


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """16-bit samples at `rate` to RATE: a windowed-sinc low-pass under the new Nyquist, then
    linear interpolation onto the new instants."""
    x = samples.astype(np.float64)
    if rate != RATE:
        cutoff = 0.9 * (RATE / 2) / rate  # cycles per input sample
        n = np.arange(-32, 33)
        taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(len(n))
        x = np.convolve(x, taps / taps.sum(), mode="same")
        t_out = np.arange(int(len(x) * RATE / rate)) * (rate / RATE)
        x = np.interp(t_out, np.arange(len(x)), x)
    return np.clip(np.round(x), -32768, 32767).astype("<i2")


@lru_cache(maxsize=8)
def _voices(exe: str) -> frozenset[str]:
    """The languages and voice files espeak-ng has (it falls back to English, silently, for a
    voice it lacks: a Mandarin text spelt out in English must not reach a caller)."""
    try:
        listing = subprocess.run(
            [exe, "--voices"], capture_output=True, text=True, timeout=TIMEOUT_S, check=True
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return frozenset()
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            names.update({cols[1], cols[4], cols[4].rsplit("/", 1)[-1]})
    return frozenset(names)


def render_wav(text: str, voice: str) -> bytes:
    """`text` spoken by espeak-ng as an 8 kHz mono 16-bit WAV file's bytes."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise TtsUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    if voice not in _voices(exe):
        raise TtsUnavailable(f"espeak-ng has no voice {voice!r} (espeak-ng --voices=zh)")
    try:
        out = subprocess.run(
            [exe, "-v", voice, "--stdout", "-b", "1", text],
            capture_output=True,
            timeout=TIMEOUT_S,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError) as e:
        raise TtsUnavailable(f"espeak-ng failed: {type(e).__name__}") from e
    try:
        with wave.open(io.BytesIO(out)) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise TtsUnavailable("espeak-ng wrote an unexpected WAV format")
            rate = w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    except (wave.Error, EOFError) as e:
        raise TtsUnavailable(f"espeak-ng wrote no WAV: {e}") from e
    if samples.size == 0:
        raise TtsUnavailable("espeak-ng rendered no sound")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(_resample(samples, rate).tobytes())
    return buf.getvalue()


def _prune(folder: Path, keep: Path) -> None:
    cutoff = time.time() - KEEP_DAYS * 86400
    for f in folder.glob("*.wav"):
        with contextlib.suppress(OSError):
            if f != keep and f.stat().st_mtime < cutoff:
                f.unlink()


def spoken_prompt(sounds_dir: Path, text: str, voice: str) -> str:
    """The name to play for `text`, rendered into sounds_dir on first use (written to a temporary
    file and renamed, so Asterisk never reads half a file). Raises TtsUnavailable."""
    name = prompt_name(text, voice)
    target = sounds_dir / f"{name}.wav"
    if target.exists():
        with contextlib.suppress(OSError):
            os.utime(target)  # still in use: not pruned
        return name
    data = render_wav(text, voice)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # Asterisk runs as its own user
        os.replace(tmp, target)
    except OSError as e:
        raise TtsUnavailable(f"cannot write {target.parent}: {e.strerror}") from e
    _prune(target.parent, target)
    log.info("after-hours prompt rendered to %s (%d bytes)", target, len(data))
    return name
