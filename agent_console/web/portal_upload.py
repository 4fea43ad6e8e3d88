"""The portal's one optional attachment: a photo (JPEG/PNG) or a PDF.

The type is read from the file's first bytes (magic numbers), never from its name or the
browser's Content-Type; the size is capped by portal.yaml attachment.max_mb (and the request
body by the same figure, see `max_body`). Files land under data_dir/portal_uploads/YYYYMM/ with
a random name and the sniffed extension only (the submitter's file name is kept as metadata,
cleaned), folders 0700 and files 0600, created exclusively (never overwriting).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.loader import load_yaml

SIGNATURES: dict[str, tuple[bytes, str, str]] = {
    # kind: (magic, MIME type, extension)
    "jpeg": (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    "png": (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    "pdf": (b"%PDF-", "application/pdf", "pdf"),
}
KIND_LABELS = {"jpeg": "JPG 图片", "png": "PNG 图片", "pdf": "PDF 文件"}
FORM_ROOM = 64 * 1024  # the other fields of the form, in bytes
UPLOAD_DIR = "portal_uploads"


class AttachmentError(ValueError):
    """A Chinese message for the submitter."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    kinds: tuple[str, ...]

    @classmethod
    def of(cls, settings: Any) -> Limits:
        cfg = load_yaml(settings, "portal.yaml").get("attachment") or {}
        kinds = tuple(k for k in (cfg.get("types") or SIGNATURES) if k in SIGNATURES)
        return cls(int(float(cfg.get("max_mb", 5)) * 1024 * 1024), kinds)

    def describe(self) -> str:
        mb = self.max_bytes / 1024 / 1024
        return f"{'、'.join(KIND_LABELS[k] for k in self.kinds)}，不超过 {mb:g}MB"


def max_body(settings: Any) -> int:
    """The body size a portal submission may have: the attachment plus the form's fields."""
    return Limits.of(settings).max_bytes + FORM_ROOM


def sniff(data: bytes) -> str | None:
    """The kind of file these bytes are (by their magic number), or None."""
    for kind, (magic, _mime, _ext) in SIGNATURES.items():
        if data.startswith(magic):
            return kind
    return None


def check(settings: Any, data: bytes) -> str:
    """The kind of an acceptable attachment, else AttachmentError."""
    limits = Limits.of(settings)
    if len(data) > limits.max_bytes:
        raise AttachmentError(f"附件过大：只接受{limits.describe()}")
    if not data:
        raise AttachmentError("附件是空文件，请重新选择")
    kind = sniff(data)
    if kind is None or kind not in limits.kinds:
        raise AttachmentError(f"附件类型不支持：只接受{limits.describe()}")
    return kind


_UNSAFE = re.compile(r"[^\w\u4e00-\u9fff.\-（）() ]+")


def clean_name(name: str | None, ext: str) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = _UNSAFE.sub("_", base)[:80].strip(" .") or "附件"
    return base if base.lower().endswith("." + ext) else f"{base}.{ext}"


def store(settings: Any, data: bytes, kind: str, name: str | None) -> dict[str, Any]:
    """Write the file; returns its metadata for the ticket (channel_data.attachments)."""
    _magic, mime, ext = SIGNATURES[kind]
    month = datetime.now(UTC).strftime("%Y%m")
    folder = Path(settings.data_dir) / UPLOAD_DIR / month
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for p in (folder.parent, folder):
        os.chmod(p, 0o700)
    file_id = secrets.token_hex(16)
    fd = os.open(folder / f"{file_id}.{ext}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return {
        "id": file_id,
        "path": f"{month}/{file_id}.{ext}",
        "name": clean_name(name, ext),
        "type": mime,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def remove(settings: Any, meta: dict[str, Any]) -> None:
    """Delete a stored file whose ticket did not commit."""
    with contextlib.suppress(OSError, KeyError):
        (Path(settings.data_dir) / UPLOAD_DIR / str(meta["path"])).unlink()
