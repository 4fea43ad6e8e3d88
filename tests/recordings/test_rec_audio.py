"""Probe/decode of what a PBX writes, and a clear AudioError for every kind of bad file."""

from __future__ import annotations

import hashlib
import struct
import warnings

import numpy as np
import pytest
from rec_testing import (
    AUDIO,
    CLIPS,
    PBX_MONITOR,
    PBX_VOICEMAIL,
    alaw_encode,
    read_pcm,
    ulaw_encode,
    wav_bytes,
    write_g711,
    write_pcm,
)

from recordings.audio import (
    ALAW_TO_PCM16,
    ULAW_TO_PCM16,
    AudioError,
    decode,
    iter_pcm16,
    probe,
)


def sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_shared_clips_and_pbx_files_probe_as_pcm():
    assert len(CLIPS) == 4
    for clip in CLIPS:
        info = probe(clip)
        assert (info.codec, info.sample_rate, info.channels) == ("pcm_s16le", 16000, 1)
        samples, rate = read_pcm(clip)
        assert info.frames == len(samples) and rate == 16000
    mon = probe(PBX_MONITOR)
    assert (mon.sample_rate, mon.channels, mon.codec) == (8000, 1, "pcm_s16le")
    assert mon.duration_s == pytest.approx(13.16)
    vm = probe(PBX_VOICEMAIL)
    assert vm.sample_rate == 8000 and vm.duration_s == pytest.approx(9.484875)


def test_decode_matches_wave_module_bit_for_bit():
    for path in (*CLIPS, PBX_MONITOR, PBX_VOICEMAIL):
        ours, _ = decode(path)
        ref, _ = read_pcm(path)
        assert np.array_equal(ours, ref)


def test_wav_with_list_chunk_before_data_is_found():
    # funasr clip has a LIST chunk between fmt and data
    raw = (AUDIO / "funasr_asr_example_zh.wav").read_bytes()
    assert b"LIST" in raw[:100]
    info = probe(AUDIO / "funasr_asr_example_zh.wav")
    assert info.data_offset > 44


def test_g711_tables_agree_with_audioop_reference():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    codes = bytes(range(256))
    ref_u = np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2")
    ref_a = np.frombuffer(audioop.alaw2lin(codes, 2), "<i2")
    assert np.array_equal(ULAW_TO_PCM16, ref_u)
    assert np.array_equal(ALAW_TO_PCM16, ref_a)


def test_g711_table_landmarks_without_audioop():
    # ITU-T G.711: 0xFF/0x7F are μ-law zero; 0x00 is the most negative; A-law 0xD5 = +8, 0x55 = -8
    assert ULAW_TO_PCM16[0xFF] == 0 and ULAW_TO_PCM16[0x7F] == 0
    assert ULAW_TO_PCM16[0x00] == -32124 and ULAW_TO_PCM16[0x80] == 32124
    assert ALAW_TO_PCM16[0xD5] == 8 and ALAW_TO_PCM16[0x55] == -8
    assert ALAW_TO_PCM16[0xAA] == 32256 and ALAW_TO_PCM16[0x2A] == -32256


@pytest.mark.parametrize("law,codec", [("ulaw", "pcm_mulaw"), ("alaw", "pcm_alaw")])
def test_g711_wav_decodes_close_to_source(tmp_path, law, codec):
    src, _ = read_pcm(PBX_VOICEMAIL)
    path = write_g711(tmp_path / f"vm-{law}.wav", src, 8000, law)
    info = probe(path)
    assert (info.codec, info.sample_rate, info.frames, info.sample_width) == (
        codec,
        8000,
        len(src),
        1,
    )
    out, _ = decode(path)
    # G.711 is 8-bit log PCM: ~38 dB SNR on speech
    err = out.astype(np.float64) - src
    snr = 10 * np.log10(np.mean(src.astype(np.float64) ** 2) / np.mean(err**2))
    assert snr > 30
    enc = ulaw_encode if law == "ulaw" else alaw_encode
    table = ULAW_TO_PCM16 if law == "ulaw" else ALAW_TO_PCM16
    assert np.array_equal(out, table[enc(src)])


def test_extensible_header_with_pcm_subformat(tmp_path):
    src, _ = read_pcm(CLIPS[0])
    p = tmp_path / "ext.wav"
    p.write_bytes(
        wav_bytes(
            src.astype("<i2").tobytes(), tag=1, channels=1, rate=16000, bits=16, extensible=True
        )
    )
    out, info = decode(p)
    assert info.codec == "pcm_s16le" and np.array_equal(out, src)


def test_stereo_mixdown_and_channel_pick(tmp_path):
    left, _ = read_pcm(PBX_VOICEMAIL)
    right = (left // 3).astype(np.int16)
    inter = np.empty(len(left) * 2, np.int16)
    inter[0::2], inter[1::2] = left, right
    p = write_pcm(tmp_path / "stereo.wav", inter, 8000, channels=2)
    info = probe(p)
    assert info.channels == 2 and info.frames == len(left)
    mixed, _ = decode(p)
    assert np.array_equal(mixed, ((left.astype(np.int32) + right) // 2).astype(np.int16))
    assert np.array_equal(decode(p, channel=0)[0], left)
    assert np.array_equal(decode(p, channel=1)[0], right)
    with pytest.raises(AudioError) as e:
        decode(p, channel=2)
    assert e.value.code == "bad_channel"
    # stereo μ-law as some MixMonitor set-ups write it
    pu = write_g711(tmp_path / "stereo-ulaw.wav", inter, 8000, "ulaw", channels=2)
    assert probe(pu).channels == 2 and len(decode(pu)[0]) == len(left)


def test_loud_stereo_mixdown_does_not_wrap(tmp_path):
    inter = np.full(16000, 32767, np.int16)
    p = write_pcm(tmp_path / "loud.wav", inter, 8000, channels=2)
    assert decode(p)[0].min() == 32767


def test_blocks_cover_every_frame(tmp_path):
    total = sum(len(b) for b in iter_pcm16(PBX_MONITOR, block_frames=777))
    assert total == probe(PBX_MONITOR).frames


def test_unfinalised_streaming_header_uses_available_data(tmp_path):
    src, _ = read_pcm(PBX_VOICEMAIL)
    raw = bytearray(wav_bytes(src.tobytes(), tag=1, channels=1, rate=8000, bits=16))
    data_at = raw.index(b"data")
    raw[data_at + 4 : data_at + 8] = struct.pack("<I", 0)  # writer never came back to fix it
    p = tmp_path / "live.wav"
    p.write_bytes(bytes(raw))
    assert probe(p).frames == len(src)


# ---- every kind of bad file: a clear AudioError, the original untouched ----------------------


def _bad_files(tmp_path):
    good = PBX_VOICEMAIL.read_bytes()
    src, _ = read_pcm(PBX_VOICEMAIL)
    files = {
        "empty": (b"", "empty"),
        "truncated_header": (good[:20], "wrong_container"),  # RIFF but cut before WAVE… see below
        "only_riff_wave": (good[:12], "truncated_header"),
        "cut_fmt": (good[:30], "truncated_header"),
        "truncated_data": (good[: len(good) // 2], "truncated"),
        "mp3_named_wav": (
            b"ID3\x04\x00\x00\x00\x00\x00\x21" + b"\xff\xfb\x90\x64" + b"\x00" * 400,
            "wrong_container",
        ),
        "mp3_frame_sync": (b"\xff\xfb\x90\x64" + b"\x00" * 400, "wrong_container"),
        "ogg_named_wav": (b"OggS\x00\x02" + b"\x00" * 400, "wrong_container"),
        "text_file": (b"hello, this is not audio at all\n" * 4, "wrong_container"),
        "gsm": (
            wav_bytes(b"\x00" * 650, tag=0x31, channels=1, rate=8000, bits=8),
            "unsupported_codec",
        ),
        "pcm8": (
            wav_bytes(b"\x80" * 8000, tag=1, channels=1, rate=8000, bits=8),
            "unsupported_codec",
        ),
        "float32": (
            wav_bytes(b"\x00" * 32000, tag=3, channels=1, rate=8000, bits=32),
            "unsupported_codec",
        ),
        "six_channels": (
            wav_bytes(b"\x00" * 96000, tag=1, channels=6, rate=8000, bits=16),
            "unsupported_channels",
        ),
        "rate_4k": (
            wav_bytes(src[:4000].tobytes(), tag=1, channels=1, rate=4000, bits=16),
            "unsupported_rate",
        ),
        "no_frames": (wav_bytes(b"", tag=1, channels=1, rate=8000, bits=16), "empty"),
    }
    # RIFF header cut mid-way: still recognisably RIFF/WAVE but no chunks
    files["truncated_header"] = (good[:16], "truncated_header")
    out = {}
    for name, (data, code) in files.items():
        p = tmp_path / f"{name}.wav"
        p.write_bytes(data)
        out[name] = (p, code)
    return out


def test_every_bad_file_is_rejected_with_a_named_reason(tmp_path):
    for name, (path, code) in _bad_files(tmp_path).items():
        before = sha(path)
        with pytest.raises(AudioError) as e:
            decode(path)
        assert e.value.code == code, (name, e.value.code, str(e.value))
        assert str(path) in str(e.value)  # the message names the file
        assert sha(path) == before, name  # original untouched
    for name, word in [("mp3_named_wav", "MP3"), ("ogg_named_wav", "Ogg"), ("gsm", "GSM")]:
        with pytest.raises(AudioError, match=word):
            probe(tmp_path / f"{name}.wav")


def test_over_limit_duration_is_rejected():
    with pytest.raises(AudioError) as e:
        probe(PBX_VOICEMAIL, max_seconds=5)
    assert e.value.code == "too_long" and "上限" in str(e.value)
    assert probe(PBX_VOICEMAIL, max_seconds=10).duration_s < 10


def test_missing_file(tmp_path):
    with pytest.raises(AudioError) as e:
        probe(tmp_path / "nope.wav")
    assert e.value.code == "missing"
