"""`callcenter asr download-model`: fetch a Mandarin Vosk model from the official site, verify, unpack.

Checksums: the official site (alphacephei.com/vosk/models) publishes no checksums. The pinned
sha256 of vosk-model-small-cn-0.22.zip (43 898 754 bytes) is the one two independent mirrors of
that same file publish: the Git LFS pointer of huggingface.co/rhasspy/vosk-models
(zh/vosk-model-small-cn-0.22.zip, commit e7ac210) and the release notes of
github.com/Flashsator/AntiCyScam (tag vosk-model-cn-0.22). For the large vosk-model-cn-0.22 no
checksum could be verified, so none is pinned: the command then requires --sha256 HEX (one you
checked yourself) or an explicit --no-verify. A checksum is never invented.

The archive is streamed to a .part file while hashing, verified, then extracted into a temporary
folder beside the destination (rejecting absolute paths and `..` members) and renamed into place,
so an interrupted run never leaves a half-model that looks complete.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx

OFFICIAL_BASE = "https://alphacephei.com/vosk/models"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    sha256: str | None
    size: int | None


MODELS = {
    "small": ModelSpec(
        "vosk-model-small-cn-0.22",
        "3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba",
        43_898_754,
    ),
    "large": ModelSpec("vosk-model-cn-0.22", None, None),  # ~1.3 GB; no verifiable checksum found
}


class DownloadError(RuntimeError):
    pass


ProgressFn = Callable[[int, int | None], None]  # (bytes so far, total or None)


def _safe_members(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    for m in zf.infolist():
        p = PurePosixPath(m.filename)
        if p.is_absolute() or ".." in p.parts or m.filename.startswith(("/", "\\")):
            raise DownloadError(f"archive member {m.filename!r} escapes the target folder")
    return zf.infolist()


def _find_model_root(folder: Path) -> Path:
    """The folder holding am/ and conf/ (the official zips wrap it in one top-level folder)."""
    for cand in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if (cand / "am" / "final.mdl").exists() and (cand / "conf").is_dir():
            return cand
    raise DownloadError("the archive does not contain a Vosk model (no am/final.mdl and conf/)")


def download_model(
    dest_dir: Path,
    *,
    large: bool = False,
    sha256: str | None = None,
    verify: bool = True,
    base_url: str = OFFICIAL_BASE,
    progress: ProgressFn | None = None,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and unpack; returns the model folder (set CALLCENTER_ASR_MODEL_PATH to it)."""
    spec = MODELS["large" if large else "small"]
    expected = (sha256 or spec.sha256 or "").lower() or None
    if verify and expected is None:
        raise DownloadError(
            f"no verified sha256 is pinned for {spec.name}: pass --sha256 HEX (a checksum you "
            "verified) or --no-verify to accept the download unchecked"
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / spec.name
    if target.exists() and not force:
        _find_model_root(target)
        return target

    url = f"{base_url.rstrip('/')}/{spec.name}.zip"
    part = dest_dir / f"{spec.name}.zip.part"
    h = hashlib.sha256()
    done = 0
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as r:
            if r.status_code != 200:
                raise DownloadError(f"GET {url}: HTTP {r.status_code}")
            total = int(r.headers["content-length"]) if "content-length" in r.headers else None
            with part.open("wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        if total is not None and done != total:
            raise DownloadError(f"GET {url}: got {done} of {total} bytes (connection dropped)")
        digest = h.hexdigest()
        if verify and digest != expected:
            raise DownloadError(
                f"sha256 mismatch for {spec.name}.zip: expected {expected}, got {digest}; "
                "the file was deleted"
            )
        staging = dest_dir / f".{spec.name}.unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            with zipfile.ZipFile(part) as zf:
                zf.extractall(staging, members=_safe_members(zf))
        except zipfile.BadZipFile as e:
            raise DownloadError(f"{spec.name}.zip is not a valid zip archive: {e}") from e
        root = _find_model_root(staging)
        if target.exists():
            shutil.rmtree(target)
        root.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        return target
    except httpx.HTTPError as e:
        raise DownloadError(f"GET {url}: {e}") from e
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(dest_dir / f".{spec.name}.unpacking", ignore_errors=True)
