"""`callcenter asr download-model` against a local HTTP server serving a zip built here
(no network on this machine): checksum, unpack layout, refusals, and the CLI around it."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from asr import download as dl
from asr.download import MODELS, DownloadError, download_model

NAME = MODELS["small"].name


def model_zip(top: str = NAME, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{top}/am/final.mdl", b"not a real model, only the layout")
        z.writestr(f"{top}/conf/mfcc.conf", "--sample-frequency=16000\n")
        z.writestr(f"{top}/graph/words.txt", "<eps> 0\n")
        for k, v in (extra or {}).items():
            z.writestr(k, v)
    return buf.getvalue()


class Server:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.lie_length: int | None = None
        self.requests: list[str] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(outer.lie_length or len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/vosk/models"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_pinned_checksums_are_real_looking_and_large_has_none():
    assert len(MODELS["small"].sha256) == 64 and MODELS["small"].size == 43_898_754
    assert MODELS["large"].sha256 is None  # could not be verified: never invented


def test_download_verify_unpack(server, tmp_path):
    z = model_zip()
    server.files[f"/vosk/models/{NAME}.zip"] = z
    seen = []
    path = download_model(
        tmp_path / "models",
        sha256=sha(z),
        base_url=server.base,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert path == tmp_path / "models" / NAME
    assert (path / "am" / "final.mdl").exists() and (path / "conf" / "mfcc.conf").exists()
    assert seen[-1] == (len(z), len(z))
    assert not list((tmp_path / "models").glob("*.part")) and not list(
        (tmp_path / "models").glob(".*")
    )
    # second call: already there, no download
    assert download_model(tmp_path / "models", sha256=sha(z), base_url=server.base) == path
    assert len(server.requests) == 1


def test_pinned_checksum_is_used_by_default(server, tmp_path):
    server.files[f"/vosk/models/{NAME}.zip"] = model_zip()  # not the real archive
    with pytest.raises(DownloadError, match=MODELS["small"].sha256):
        download_model(tmp_path / "m", base_url=server.base)
    assert not (tmp_path / "m" / NAME).exists() and not list((tmp_path / "m").iterdir())


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    server.files[f"/vosk/models/{NAME}.zip"] = model_zip()
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_model(tmp_path / "m", sha256="0" * 64, base_url=server.base)
    assert list((tmp_path / "m").iterdir()) == []


def test_large_needs_an_explicit_checksum_or_no_verify(server, tmp_path):
    large = MODELS["large"].name
    z = model_zip(large)
    server.files[f"/vosk/models/{large}.zip"] = z
    with pytest.raises(DownloadError, match="--sha256"):
        download_model(tmp_path / "m", large=True, base_url=server.base)
    assert server.requests == []  # refused before downloading 1.3 GB
    p = download_model(tmp_path / "m", large=True, verify=False, base_url=server.base)
    assert p.name == large and (p / "am" / "final.mdl").exists()


def test_bad_archives_are_refused(server, tmp_path):
    evil = model_zip(extra={"../../escape.txt": b"x"})
    server.files[f"/vosk/models/{NAME}.zip"] = evil
    with pytest.raises(DownloadError, match="escapes"):
        download_model(tmp_path / "m", sha256=sha(evil), base_url=server.base)
    assert not (tmp_path / "escape.txt").exists()
    not_model = io.BytesIO()
    with zipfile.ZipFile(not_model, "w") as z:
        z.writestr("readme.txt", "hello")
    server.files[f"/vosk/models/{NAME}.zip"] = not_model.getvalue()
    with pytest.raises(DownloadError, match="does not contain a Vosk model"):
        download_model(tmp_path / "m2", sha256=sha(not_model.getvalue()), base_url=server.base)
    server.files[f"/vosk/models/{NAME}.zip"] = b"garbage" * 10
    with pytest.raises(DownloadError, match="not a valid zip"):
        download_model(tmp_path / "m3", verify=False, base_url=server.base)


def test_http_errors(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_model(tmp_path / "m", verify=False, base_url=server.base)
    z = model_zip()
    server.files[f"/vosk/models/{NAME}.zip"] = z
    server.lie_length = len(z) + 1000  # connection drops before the end
    with pytest.raises(DownloadError):
        download_model(tmp_path / "m", verify=False, base_url=server.base, timeout=5)
    assert not (tmp_path / "m" / NAME).exists()


def test_cli_download_model(server, tmp_path, monkeypatch):
    z = model_zip()
    server.files[f"/vosk/models/{NAME}.zip"] = z
    monkeypatch.setenv("CALLCENTER_DATA_DIR", str(tmp_path / "var"))
    from config.settings import get_settings

    get_settings.cache_clear()
    from asr.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["download-model", "--base-url", server.base, "--sha256", sha(z)])
    get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    assert str(tmp_path / "var" / "models" / NAME) in r.output
    r = runner.invoke(app, ["download-model", "--large", "--base-url", server.base])
    assert r.exit_code == 2 and "--sha256" in r.output


def test_official_url_shape():
    assert dl.OFFICIAL_BASE == "https://alphacephei.com/vosk/models"
