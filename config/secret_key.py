"""The deployment's secret key (CALLCENTER_SECRET_KEY, else a key generated once into the data
folder): signs the staff's session tokens and CSRF tokens (agent_console.security) and is the root
of the key that encrypts stored hand-off secrets (ticketing.sealed). Here, below both, so the web
app, the workers and the CLI read the same key."""

from __future__ import annotations

import hmac
import os
import secrets
import time
from pathlib import Path

from config.settings import Settings

MIN_SECRET_KEY_BYTES = 32


def same_secret(given: object, expected: str | bytes) -> bool:
    """Constant-time comparison of what a client sent (form field, cookie, header) with a secret.

    hmac.compare_digest raises TypeError on a str with non-ASCII characters, so a client that
    sends "１２３" or a zero-width space as a token got a 500; here such a value is simply wrong.
    Anything but a non-empty str or bytes is wrong too."""
    if not isinstance(given, str | bytes) or not given:
        return False
    a = given.encode("utf-8", "surrogatepass") if isinstance(given, str) else given
    b = expected.encode("utf-8", "surrogatepass") if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def ensure_secret_key(settings: Settings) -> bytes:
    """settings.secret_key, else the key in data_dir/secret_key, generated once (mode 0600).

    O_EXCL makes the first writer win when several processes start at once.
    """
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    path = Path(settings.data_dir) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it right now
            data = path.read_bytes().strip()
            if data:
                if len(data) < MIN_SECRET_KEY_BYTES:
                    raise RuntimeError(
                        f"secret key file {path} holds {len(data)} bytes; at least "
                        f"{MIN_SECRET_KEY_BYTES} are required (delete it to generate a new one)"
                    ) from None
                return data
            time.sleep(0.05)
        raise RuntimeError(f"secret key file {path} is empty") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key.encode()
