"""Offline Mandarin ASR with Vosk: model, resampling, transcription, keywords, RQ jobs.

Front door (other packages use these names):
    request_transcription(session, settings, recording_id)  queue a stored recording (outbox)
    link_recording(session, settings, recording_id, ticket_id)  a call recording found its ticket
    flush_outbox(engine, settings)                   push work kept while Redis was down
    transcribe_file(lm, path), get_model(settings)    direct use (CLI, bench)
    normalise(text)                                    Mandarin post-processing
    Transcript                                         the stored text of a recording
    AsrWorker, preload(settings)                       the RQ worker that keeps models loaded
    cli_app, transcribe_command                        the `callcenter asr` / `transcribe` commands
Imports config, recordings and ticketing only (layering). Heavy modules load lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "request_transcription": "asr.jobs",
    "Transcript": "asr.models",
    "link_recording": "asr.jobs",
    "flush_outbox": "asr.jobs",
    "process_recording": "asr.jobs",
    "transcribe_file": "asr.transcribe",
    "get_model": "asr.model",
    "normalise": "asr.textnorm",
    "spot": "asr.keywords",
    "AsrWorker": "asr.worker",
    "preload": "asr.worker",
    "cli_app": "asr.cli",
    "transcribe_command": "asr.cli",
}
__all__ = sorted(_EXPORTS)


_ALIASES = {"cli_app": "app", "transcribe_command": "transcribe"}


def __getattr__(name: str) -> Any:  # lazy: `import asr` must not load Vosk
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), _ALIASES.get(name, name))
    raise AttributeError(name)
