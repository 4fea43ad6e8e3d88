"""Sample-rate conversion with soxr (band-limited, high quality), in whole arrays or as a stream.

Telephone audio is 8 kHz, Vosk models are trained at 16 kHz. Feeding 8 kHz into a 16 kHz model
without proper resampling either fails or (Kaldi's own up-sampling) costs accuracy, so the
pipeline converts explicitly, block by block, so hours-long files never sit in memory twice.
"""

from __future__ import annotations

import numpy as np
import soxr

QUALITY = "HQ"


def _as_int16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Whole-array conversion of mono int16 samples; returns int16."""
    if src_rate == dst_rate:
        return np.asarray(samples, dtype=np.int16)
    y = soxr.resample(np.asarray(samples, dtype=np.float32), src_rate, dst_rate, quality=QUALITY)
    return _as_int16(y)


class StreamResampler:
    """Chunked conversion with state carried across blocks (no clicks at block edges)."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._stream = (
            None
            if src_rate == dst_rate
            else soxr.ResampleStream(src_rate, dst_rate, 1, dtype="float32", quality=QUALITY)
        )

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return np.asarray(block, dtype=np.int16)
        y = self._stream.resample_chunk(np.asarray(block, dtype=np.float32), last=last)
        return _as_int16(y)

    def flush(self) -> np.ndarray:
        return self.process(np.zeros(0, dtype=np.int16), last=True)
