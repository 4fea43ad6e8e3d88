"""Recordings: the audio store (MixMonitor calls, voicemails), metadata, retention, playback.

Front door (other packages use these names):
    import_monitor, import_voicemail, import_file, scan_spool, purge_expired, absolute_path,
        imported_sources, StoreError (recordings.store)
    parse_voicemail_txt, parse_monitor_name, PbxFile (recordings.asterisk): what the PBX says
    probe, decode, iter_pcm16, AudioError, AudioInfo (recordings.audio)
    Recording, RecordingKind, PlaybackLog (recordings.models)
    make_router (recordings.api): the playback routes, mounted by the web layer
    fetch_recording (recordings.remote): a Twilio recording into the store (fetch_job: its RQ job)
    check_access, log_playback, PlaybackDenied (recordings.playback): the playback policy, also
        applied to transcripts shown as text
    twilio_media_url_allowed (recordings.remote): a RecordingUrl is on Twilio's hosts
Imports only config (layering).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.lazy import lazy_exports

if TYPE_CHECKING:  # the names, typed; at run time read by lazy_exports (config/lazy.py)
    from recordings.api import make_router
    from recordings.asterisk import (
        PbxFile,
        parse_monitor_name,
        parse_voicemail_txt,
    )
    from recordings.audio import (
        AudioError,
        AudioInfo,
        decode,
        iter_pcm16,
        probe,
    )
    from recordings.models import (
        PlaybackLog,
        Recording,
        RecordingKind,
    )
    from recordings.playback import PlaybackDenied, check_access, log_playback
    from recordings.remote import fetch_recording, twilio_media_url_allowed
    from recordings.store import (
        StoreError,
        absolute_path,
        import_file,
        import_monitor,
        import_voicemail,
        imported_sources,
        purge_expired,
        scan_spool,
    )

# lazy: importing the package stays cheap
if not TYPE_CHECKING:  # a checker sees the imports above, and no __getattr__ to hide typos
    __all__, __getattr__ = lazy_exports(__name__, __file__)
