"""Streaming transcription: file → probe → blocks of PCM → soxr to the model rate → Vosk → text.

Memory stays constant (blocks of ~0.25 s at the model rate), so a three-hour call recording costs
the same RAM as a three-second one. Words come with times (seconds from the start of the audio)
and Vosk's confidence; the text is post-processed for Mandarin (asr/textnorm.py) when the model is
Chinese, and only whitespace-normalised otherwise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import vosk

from asr.model import LoadedModel
from asr.resample import StreamResampler
from asr.textnorm import normalise
from recordings import AudioInfo, iter_pcm16, probe

BLOCK_SECONDS = 0.25


@dataclass
class Word:
    word: str
    start: float
    end: float
    conf: float


@dataclass
class TranscriptResult:
    text: str
    raw_text: str
    words: list[Word]
    duration_s: float
    elapsed_s: float
    model: str
    language: str | None
    source_rate: int
    model_rate: int
    segments: list[str] = field(default_factory=list)

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time / audio time (lower is faster)."""
        return self.elapsed_s / self.duration_s if self.duration_s > 0 else 0.0

    def words_as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(w) for w in self.words]

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "raw_text": self.raw_text,
            "duration_s": round(self.duration_s, 3),
            "rtf": round(self.rtf, 4),
            "model": self.model,
            "language": self.language,
            "words": self.words_as_dicts(),
        }


def postprocess(raw: str, language: str | None) -> str:
    return normalise(raw) if language == "zh" else " ".join(raw.split())


def _collect(result_json: str, words: list[Word], segments: list[str]) -> None:
    r = json.loads(result_json)
    for w in r.get("result", []) or []:
        words.append(
            Word(str(w["word"]), float(w["start"]), float(w["end"]), float(w.get("conf", 1.0)))
        )
    if r.get("text"):
        segments.append(r["text"])


def transcribe_blocks(
    lm: LoadedModel, blocks: Iterable[np.ndarray], source_rate: int, duration_s: float
) -> TranscriptResult:
    """Feed mono int16 blocks at `source_rate`; resampled to the model's rate on the way."""
    t0 = time.perf_counter()
    rec = vosk.KaldiRecognizer(lm.model, float(lm.sample_rate))
    rec.SetWords(True)
    rs = StreamResampler(source_rate, lm.sample_rate)
    words: list[Word] = []
    segments: list[str] = []
    step = max(1, int(lm.sample_rate * BLOCK_SECONDS))
    pending = np.zeros(0, dtype=np.int16)

    def feed(samples: np.ndarray) -> None:
        if samples.size and rec.AcceptWaveform(samples.astype("<i2", copy=False).tobytes()):
            _collect(rec.Result(), words, segments)

    for block in blocks:
        out = rs.process(block)
        pending = np.concatenate([pending, out]) if pending.size else out
        while pending.size >= step:
            feed(pending[:step])
            pending = pending[step:]
    feed(np.concatenate([pending, rs.flush()]))
    _collect(rec.FinalResult(), words, segments)
    raw = " ".join(segments)
    return TranscriptResult(
        text=postprocess(raw, lm.language),
        raw_text=raw,
        words=words,
        duration_s=duration_s,
        elapsed_s=time.perf_counter() - t0,
        model=lm.name,
        language=lm.language,
        source_rate=source_rate,
        model_rate=lm.sample_rate,
        segments=segments,
    )


def transcribe_file(
    lm: LoadedModel,
    path: str | Path,
    *,
    max_seconds: float | None = None,
    channel: int | None = None,
    info: AudioInfo | None = None,
) -> TranscriptResult:
    """Probe (AudioError on bad audio), then stream the file through the recogniser."""
    t0 = time.perf_counter()
    info = info or probe(path, max_seconds=max_seconds)
    block_frames = max(1, int(info.sample_rate * BLOCK_SECONDS))
    res = transcribe_blocks(
        lm,
        iter_pcm16(path, info, block_frames=block_frames, channel=channel),
        info.sample_rate,
        info.duration_s,
    )
    res.elapsed_s = time.perf_counter() - t0  # include probing and decoding: the pipeline's cost
    return res


def transcribe_samples(lm: LoadedModel, samples: np.ndarray, rate: int) -> TranscriptResult:
    step = max(1, int(rate * BLOCK_SECONDS))
    blocks = (samples[i : i + step] for i in range(0, len(samples), step))
    return transcribe_blocks(lm, blocks, rate, len(samples) / rate)
