"""The Vosk model: path from settings, loaded once per process (a Chinese model takes seconds and
hundreds of MB; loading it per job would dominate the work). RQ's forking worker loads it in the
parent (asr/worker.py) so every work-horse inherits it copy-on-write."""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import vosk

from config.settings import Settings

vosk.SetLogLevel(-1)

_lock = threading.Lock()
_loaded: dict[str, LoadedModel] = {}


class ModelNotConfigured(RuntimeError):
    """No usable model: the message tells the operator what to do."""


@dataclass(frozen=True)
class LoadedModel:
    model: vosk.Model
    path: Path
    name: str
    sample_rate: int
    language: str | None  # "zh", "ko", … when recognisable from the model, else None
    # the process that loaded it: in a forking RQ worker the work-horse inherits the parent's
    # model, so a job reporting another pid than its own shows "loaded once per worker process"
    loaded_in_pid: int = field(default_factory=os.getpid)


def model_sample_rate(path: Path) -> int:
    """The rate the model's features were trained at (mfcc.conf --sample-frequency, Kaldi default 16k)."""
    conf = path / "conf" / "mfcc.conf"
    if conf.exists():
        m = re.search(r"--sample-frequency=(\d+)", conf.read_text(errors="replace"))
        if m:
            return int(m.group(1))
    return 16000


_LANG_HINTS = (
    (re.compile(r"(?:^|[-_/])(cn|zh|chinese|mandarin|multicn)(?:[-_/.]|$)", re.I), "zh"),
    (re.compile(r"(?:^|[-_/])(ko|korean)(?:[-_/.]|$)", re.I), "ko"),
    (re.compile(r"(?:^|[-_/])(en|en-us|english)(?:[-_/.]|$)", re.I), "en"),
)


def model_language(path: Path) -> str | None:
    """Guess the model language from its folder name and README (Vosk models carry no metadata)."""
    names = [path.name, path.parent.name]
    readme = path / "README"
    if readme.exists():
        names.append(readme.read_text(errors="replace")[:200])
    for text in names:
        if "chinese" in text.lower() or "mandarin" in text.lower():
            return "zh"
        if "korean" in text.lower():
            return "ko"
        for rx, lang in _LANG_HINTS:
            if rx.search(text):
                return lang
    return None


def check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise ModelNotConfigured(
            f"ASR model folder {path} does not exist. Run `callcenter asr download-model` and set "
            "CALLCENTER_ASR_MODEL_PATH to the folder it prints."
        )
    if not (path / "am" / "final.mdl").exists() or not (path / "conf").is_dir():
        raise ModelNotConfigured(f"{path} is not a Vosk model folder (no am/final.mdl or conf/)")


def load(path: str | Path) -> LoadedModel:
    """Load (or return the already loaded) model at `path`."""
    p = Path(path).resolve()
    key = str(p)
    with _lock:
        hit = _loaded.get(key)
        if hit is not None:
            return hit
        check_model_dir(p)
        lm = LoadedModel(
            model=vosk.Model(key),
            path=p,
            name=f"{p.parent.name}/{p.name}" if p.name == "model" else p.name,
            sample_rate=model_sample_rate(p),
            language=model_language(p),
        )
        _loaded[key] = lm
        return lm


def get_model(settings: Settings) -> LoadedModel:
    if settings.asr_model_path is None:
        raise ModelNotConfigured(
            "No ASR model configured: set CALLCENTER_ASR_MODEL_PATH (download one with "
            "`callcenter asr download-model`)."
        )
    return load(settings.asr_model_path)


def loaded_count() -> int:
    """How many models this process holds (tests check 'once per process')."""
    return len(_loaded)
