"""Probe and decode what a PBX writes: RIFF/WAVE with 16-bit PCM, G.711 μ-law or A-law, mono or stereo.

Why a hand-written RIFF reader and not only `wave`: the stdlib `wave` module reads PCM (format tag 1)
and nothing else, but Asterisk writes μ-law (tag 7) and A-law (tag 6) WAVs too, and some tools write
WAVE_FORMAT_EXTENSIBLE (0xFFFE) headers. The chunk walk below is small and rejects every malformed
file with an AudioError naming the problem; nothing here ever writes to the file it reads.

G.711 is decoded with two 256-entry numpy tables (ITU-T G.711 expansion), because `audioop` is
deprecated and gone in Python 3.13.

Stereo (MixMonitor with the D option, or `monitor-format` tools that keep both legs): the default is
to MIX DOWN to mono (the mean of both channels), so one transcript holds both parties in time order.
`channel=0` / `channel=1` picks one leg instead (for MixMonitor's D option: 0 = what the channel
received from the caller ("read"), 1 = what was sent to it ("write")).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# Accepted sample rates: telephone (8 kHz) and wideband (16 kHz) plus the common higher rates a
# softphone or a converted upload may have; everything is resampled to the model's rate anyway.
MIN_RATE = 8000
MAX_RATE = 48000

TAG_PCM = 0x0001
TAG_ALAW = 0x0006
TAG_MULAW = 0x0007
TAG_EXTENSIBLE = 0xFFFE
STREAMING_SIZES = (0, 0xFFFFFFFF)  # data size a writer leaves before it finalises the header

_TAG_NAMES = {
    0x0002: "MS ADPCM",
    0x0003: "IEEE float",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0055: "MPEG layer 3",
    0x0064: "G.726 ADPCM",
    0x0065: "G.722 ADPCM",
}


class AudioError(ValueError):
    """A file we refuse to process. `code` is a stable machine word, the message says what is wrong."""

    def __init__(self, code: str, message: str, path: str | Path | None = None) -> None:
        self.code = code
        self.message = message
        self.path = str(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


@dataclass(frozen=True)
class AudioInfo:
    format: str  # always "wav" here
    codec: str  # pcm_s16le | pcm_mulaw | pcm_alaw
    sample_rate: int
    channels: int
    sample_width: int  # bytes per sample per channel as stored (2 for PCM, 1 for G.711)
    frames: int
    duration_s: float
    bytes: int  # file size
    data_offset: int
    data_size: int
    finalised: bool = True  # False: the data size was never written (writer running or killed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ulaw_table() -> np.ndarray:
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


ULAW_TO_PCM16 = _ulaw_table()
ALAW_TO_PCM16 = _alaw_table()


def _sniff_container(head: bytes) -> str | None:
    """Name what a non-WAV file really is, so the error says 'this is an MP3', not just 'bad'."""
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
        return "MP3"
    if head.startswith(b"OggS"):
        return "Ogg"
    if head.startswith(b"fLaC"):
        return "FLAC"
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head.startswith(b"RIFF") and head[8:12] != b"WAVE":
        return f"RIFF/{head[8:12].decode('latin-1', 'replace')}"
    if head.startswith((b"RF64", b"BW64")):
        return "RF64"
    if head.startswith(b"#!AMR"):
        return "AMR"
    if head.startswith(b".snd"):
        return "Sun/NeXT AU"
    return None


def probe(path: str | Path, *, max_seconds: float | None = None) -> AudioInfo:
    """Read only the header; raise AudioError for anything we cannot decode exactly."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise AudioError("missing", "文件不存在 (file not found)", p) from None
    if size == 0:
        raise AudioError("empty", "文件为空 (zero-length file)", p)
    with p.open("rb") as f:
        return _probe_stream(f, size, p, max_seconds)


def _probe_stream(f: BinaryIO, size: int, p: Path, max_seconds: float | None) -> AudioInfo:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        kind = _sniff_container(head + f.read(16))
        if kind:
            raise AudioError(
                "wrong_container", f"不是 WAV 文件，而是 {kind} (expected RIFF/WAVE)", p
            )
        if len(head) < 12:
            raise AudioError("truncated_header", f"文件头不完整：仅 {size} 字节", p)
        raise AudioError("wrong_container", "不是 RIFF/WAVE 文件 (unknown container)", p)

    fmt: dict[str, int] | None = None
    data_offset = data_size = None
    finalised = True
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        hdr = f.read(8)
        if len(hdr) < 8:
            break
        cid, csize = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        body_at = pos + 8
        if cid == b"fmt ":
            if csize < 16 or body_at + 16 > size:
                raise AudioError("truncated_header", "fmt 块不完整 (truncated fmt chunk)", p)
            raw = f.read(min(csize, 40))
            tag, ch, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", raw[:16])
            if tag == TAG_EXTENSIBLE:
                if len(raw) < 26:
                    raise AudioError("truncated_header", "WAVE_FORMAT_EXTENSIBLE 头不完整", p)
                tag = struct.unpack("<H", raw[24:26])[0]  # first two bytes of the SubFormat GUID
            fmt = {
                "tag": tag,
                "channels": ch,
                "rate": rate,
                "block_align": block_align,
                "bits": bits,
            }
        elif cid == b"data":
            data_offset = body_at
            available = size - body_at
            if csize in STREAMING_SIZES and available > 0:
                data_size = available  # header never finalised (writer still running or killed)
                finalised = False
            elif csize > available:
                raise AudioError(
                    "truncated",
                    f"数据不完整：头部声明 {csize} 字节，实际只有 {available} 字节 (truncated data)",
                    p,
                )
            else:
                data_size = csize
            break
        pos = body_at + csize + (csize & 1)  # chunks are word-aligned
    if fmt is None:
        raise AudioError("truncated_header", "缺少 fmt 块 (no fmt chunk)", p)
    if data_offset is None or data_size is None:
        raise AudioError("truncated_header", "缺少 data 块 (no data chunk)", p)

    tag, ch, rate, bits = fmt["tag"], fmt["channels"], fmt["rate"], fmt["bits"]
    if tag == TAG_PCM and bits == 16:
        codec, width = "pcm_s16le", 2
    elif tag == TAG_MULAW and bits == 8:
        codec, width = "pcm_mulaw", 1
    elif tag == TAG_ALAW and bits == 8:
        codec, width = "pcm_alaw", 1
    else:
        name = _TAG_NAMES.get(tag, f"format tag 0x{tag:04x}")
        if tag == TAG_PCM:
            name = f"{bits}-bit PCM"
        raise AudioError(
            "unsupported_codec",
            f"不支持的编码：{name}（支持 16 位 PCM、G.711 μ-law、A-law）",
            p,
        )
    if ch not in (1, 2):
        raise AudioError("unsupported_channels", f"不支持 {ch} 声道（仅支持单声道或立体声）", p)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(
            "unsupported_rate", f"不支持的采样率 {rate} Hz（支持 {MIN_RATE}–{MAX_RATE} Hz）", p
        )
    if fmt["block_align"] != ch * width:
        raise AudioError(
            "bad_header",
            f"块对齐 {fmt['block_align']} 与 {ch} 声道 × {width} 字节不符 (inconsistent header)",
            p,
        )
    frames = data_size // (ch * width)
    if frames == 0:
        raise AudioError("empty", "没有音频数据 (no audio frames)", p)
    duration = frames / rate
    if max_seconds is not None and duration > max_seconds:
        raise AudioError(
            "too_long",
            f"时长 {duration:.0f} 秒超过上限 {max_seconds:.0f} 秒 (over the duration limit)",
            p,
        )
    return AudioInfo(
        format="wav",
        codec=codec,
        sample_rate=rate,
        channels=ch,
        sample_width=width,
        frames=frames,
        duration_s=round(duration, 6),
        bytes=size,
        data_offset=data_offset,
        data_size=frames * ch * width,
        finalised=finalised,
    )


def _to_pcm16(raw: bytes, codec: str) -> np.ndarray:
    if codec == "pcm_s16le":
        return np.frombuffer(raw, dtype="<i2").astype(np.int16, copy=False)
    table = ULAW_TO_PCM16 if codec == "pcm_mulaw" else ALAW_TO_PCM16
    return table[np.frombuffer(raw, dtype=np.uint8)]


def _to_mono(samples: np.ndarray, channels: int, channel: int | None) -> np.ndarray:
    if channels == 1:
        return samples
    frames = samples.reshape(-1, channels)
    if channel is not None:
        if not 0 <= channel < channels:
            raise AudioError("bad_channel", f"声道 {channel} 不存在（共 {channels} 个）")
        return np.ascontiguousarray(frames[:, channel])
    # mean of the legs in int32 so two loud legs do not wrap around
    return (frames.astype(np.int32).sum(axis=1) // channels).astype(np.int16)


def iter_pcm16(
    path: str | Path,
    info: AudioInfo | None = None,
    *,
    block_frames: int = 8000,
    channel: int | None = None,
) -> Iterator[np.ndarray]:
    """Mono int16 blocks straight from the file: constant memory for hours-long recordings."""
    info = info or probe(path)
    frame_bytes = info.channels * info.sample_width
    remaining = info.data_size
    with Path(path).open("rb") as f:
        f.seek(info.data_offset)
        while remaining > 0:
            raw = f.read(min(block_frames * frame_bytes, remaining))
            if not raw:
                raise AudioError("truncated", "读取时文件变短 (file shrank while reading)", path)
            usable = len(raw) - len(raw) % frame_bytes
            remaining -= len(raw)
            if usable:
                yield _to_mono(_to_pcm16(raw[:usable], info.codec), info.channels, channel)


def decode(
    path: str | Path, *, max_seconds: float | None = None, channel: int | None = None
) -> tuple[np.ndarray, AudioInfo]:
    """The whole file as mono int16 samples (use iter_pcm16 for very long files)."""
    info = probe(path, max_seconds=max_seconds)
    blocks = list(iter_pcm16(path, info, block_frames=1 << 16, channel=channel))
    return (np.concatenate(blocks) if blocks else np.zeros(0, np.int16)), info


def write_wav(path: str | Path, samples: np.ndarray, rate: int, channels: int = 1) -> None:
    """16-bit PCM WAV writer (tests, benches and the CLI use it to make fixtures)."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
