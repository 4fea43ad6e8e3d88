"""Audio fixtures built from the real shared clips (no synthetic speech is ever passed off as a
transcript: these only exercise containers, codecs and channels)."""

from __future__ import annotations

import os
import struct
import wave
from pathlib import Path

import numpy as np

from recordings.audio import ALAW_TO_PCM16, ULAW_TO_PCM16

_SHARED = Path(__file__).resolve().parents[3] / "shared"
if not _SHARED.exists():
    _SHARED = Path(os.environ.get("CALLCENTER_SHARED_DIR", "../shared")).resolve()
FIXTURES = _SHARED / "fixtures"
AUDIO = FIXTURES / "audio"
PBX_MONITOR = FIXTURES / "ami/pbx-side/monitor/dxe-20261125-091531-13800138000-1795569321.1.wav"
PBX_VOICEMAIL = FIXTURES / "ami/pbx-side/voicemail/msg0000.wav"
CLIPS = sorted(AUDIO.glob("*.wav"))


def read_pcm(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy(), w.getframerate()


def _encoder(table: np.ndarray):
    """Nearest-code G.711 encoder from the decode table (exact inverse on table values)."""
    order = np.argsort(table, kind="stable")
    sorted_vals = table[order].astype(np.int32)

    def enc(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.int32)
        idx = np.clip(np.searchsorted(sorted_vals, x), 1, len(sorted_vals) - 1)
        left, right = sorted_vals[idx - 1], sorted_vals[idx]
        pick = np.where(np.abs(x - left) <= np.abs(right - x), idx - 1, idx)
        return order[pick].astype(np.uint8)

    return enc


ulaw_encode = _encoder(ULAW_TO_PCM16)
alaw_encode = _encoder(ALAW_TO_PCM16)


def wav_bytes(
    payload: bytes, *, tag: int, channels: int, rate: int, bits: int, extensible: bool = False
) -> bytes:
    width = bits // 8
    block = channels * width
    if extensible:
        guid = struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + guid
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
        if tag != 1:
            fmt += struct.pack("<H", 0)  # cbSize, as Asterisk writes for G.711
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if tag != 1:
        body += b"fact" + struct.pack("<II", 4, len(payload) // max(block, 1))
    body += (
        b"data" + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_g711(path: Path, samples: np.ndarray, rate: int, law: str, channels: int = 1) -> Path:
    enc = ulaw_encode if law == "ulaw" else alaw_encode
    tag = 7 if law == "ulaw" else 6
    path.write_bytes(
        wav_bytes(enc(samples).tobytes(), tag=tag, channels=channels, rate=rate, bits=8)
    )
    return path


def write_pcm(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())
    return path
