"""CLI pieces of the ASR package, mounted by callcenter/cli.py:

    from asr.cli import app as asr_app, transcribe as transcribe_cmd
    app.add_typer(asr_app, name="asr")
    app.command("transcribe")(transcribe_cmd)

`callcenter transcribe FILE... [--json]` prints the text per file (JSON lines with file, text,
duration_s, rtf and words when --json) with a progress bar on stderr over many files; a bad file
prints its error and makes the exit code 1 without stopping the others.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Offline Mandarin ASR (Vosk): model download, worker, outbox.", no_args_is_help=True
)


@app.command("download-model")
def download_model_cmd(
    large: Annotated[
        bool,
        typer.Option("--large", help="vosk-model-cn-0.22 (~1.3 GB) instead of the small model"),
    ] = False,
    sha256: Annotated[
        str | None, typer.Option(help="Expected sha256 (overrides the pinned one)")
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip the checksum (not recommended)")
    ] = False,
    base_url: Annotated[
        str | None, typer.Option(help="Mirror base URL instead of the official site")
    ] = None,
    dest: Annotated[
        Path | None, typer.Option(help="Folder for models (default: DATA_DIR/models)")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Download again even if the model folder exists")
    ] = False,
) -> None:
    """Download, verify (sha256) and unpack the Chinese Vosk model under the data folder."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from asr.download import OFFICIAL_BASE, DownloadError, download_model
    from config.settings import get_settings

    settings = get_settings()
    folder = dest or settings.data_dir / "models"
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("下载模型", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            path = download_model(
                folder,
                large=large,
                sha256=sha256,
                verify=not no_verify,
                base_url=base_url or OFFICIAL_BASE,
                progress=progress,
                force=force,
            )
        except DownloadError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
    typer.echo(str(path))
    typer.echo(f"export CALLCENTER_ASR_MODEL_PATH={path}", err=True)


@app.command("flush-outbox")
def flush_outbox_cmd() -> None:
    """Push transcription work kept in the database (Redis was down) to the queue."""
    from asr.jobs import flush_outbox
    from config.database import make_engine
    from config.settings import get_settings

    settings = get_settings()
    r = flush_outbox(make_engine(settings.resolved_database_url), settings)
    typer.echo(json.dumps(r.__dict__))
    if not r.redis_ok:
        raise typer.Exit(1)


@app.command("worker")
def worker_cmd(
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty")] = False,
) -> None:
    """An RQ worker on the asr queue with the model preloaded once."""
    from asr.worker import run
    from config.settings import get_settings

    run(get_settings(), burst=burst)


def transcribe(
    files: Annotated[
        list[Path], typer.Argument(help="WAV files (PCM/μ-law/A-law, mono or stereo)")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file")] = False,
    channel: Annotated[
        int | None, typer.Option(help="Stereo: 0 or 1 picks a leg (default: mix down)")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Model folder (default: CALLCENTER_ASR_MODEL_PATH)")
    ] = None,
) -> None:
    """Transcribe audio files with the configured Vosk model."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from asr.model import ModelNotConfigured, get_model, load
    from asr.transcribe import transcribe_file
    from config.settings import get_settings
    from recordings import AudioError

    settings = get_settings()
    try:
        lm = load(model) if model else get_model(settings)
    except ModelNotConfigured as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    failed = 0
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=len(files) < 2 or not sys.stderr.isatty(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("转写", total=len(files))
        for f in files:
            try:
                r = transcribe_file(lm, f, max_seconds=settings.max_audio_seconds, channel=channel)
            except (AudioError, OSError) as e:
                failed += 1
                if as_json:
                    typer.echo(json.dumps({"file": str(f), "error": str(e)}, ensure_ascii=False))
                else:
                    typer.echo(f"{f}: error: {e}", err=True)
            else:
                if as_json:
                    out = {"file": str(f), **r.as_dict()}
                    typer.echo(json.dumps(out, ensure_ascii=False))
                else:
                    typer.echo(f"{f}\t{r.text}")
            bar.advance(task)
    if failed:
        raise typer.Exit(1)
