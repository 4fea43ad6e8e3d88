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

from typing import TYPE_CHECKING

from config.lazy import lazy_exports

if TYPE_CHECKING:  # the names, typed; at run time read by lazy_exports (config/lazy.py)
    from asr.cli import app as cli_app
    from asr.cli import transcribe as transcribe_command
    from asr.jobs import (
        flush_outbox,
        link_recording,
        process_recording,
        request_transcription,
    )
    from asr.keywords import spot
    from asr.model import get_model
    from asr.models import Transcript
    from asr.textnorm import normalise
    from asr.transcribe import transcribe_file
    from asr.worker import AsrWorker, preload

# lazy: `import asr` must not load Vosk
if not TYPE_CHECKING:  # a checker sees the imports above, and no __getattr__ to hide typos
    __all__, __getattr__ = lazy_exports(__name__, __file__)
