"""Recordings: the audio store (MixMonitor calls, voicemails), metadata, retention, playback.

Front door (other packages use these names):
    import_monitor, import_voicemail, import_file, scan_spool, purge_expired, absolute_path,
        imported_sources, StoreError (recordings.store)
    parse_voicemail_txt, parse_monitor_name, PbxFile (recordings.asterisk): what the PBX says
    probe, decode, iter_pcm16, AudioError, AudioInfo (recordings.audio)
    Recording, RecordingKind, PlaybackLog (recordings.models)
    make_router (recordings.api): the playback routes, mounted by the web layer
    check_access, PlaybackDenied (recordings.playback): may this user play this recording
    fetch_recording (recordings.remote): a Twilio recording into the store (fetch_job: its RQ job)
Imports only config (layering).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "import_file": "recordings.store",
    "import_monitor": "recordings.store",
    "import_voicemail": "recordings.store",
    "scan_spool": "recordings.store",
    "imported_sources": "recordings.store",
    "StoreError": "recordings.store",
    "parse_voicemail_txt": "recordings.asterisk",
    "parse_monitor_name": "recordings.asterisk",
    "PbxFile": "recordings.asterisk",
    "purge_expired": "recordings.store",
    "absolute_path": "recordings.store",
    "probe": "recordings.audio",
    "decode": "recordings.audio",
    "iter_pcm16": "recordings.audio",
    "AudioError": "recordings.audio",
    "AudioInfo": "recordings.audio",
    "Recording": "recordings.models",
    "RecordingKind": "recordings.models",
    "PlaybackLog": "recordings.models",
    "make_router": "recordings.api",
    "check_access": "recordings.playback",
    "PlaybackDenied": "recordings.playback",
    "fetch_recording": "recordings.remote",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy: importing the package stays cheap
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
