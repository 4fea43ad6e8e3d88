"""Secrets the database keeps for us (the hand-off secrets the administrator enters per external
system): encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the
deployment's secret key (config.secret_key: CALLCENTER_SECRET_KEY or the generated one), so a copy
of the database alone does not give away the secrets that sign hand-offs and their callbacks.

A stored value is "fernet:" + the token. Rows written before encryption hold the plain secret:
`unseal` still returns it (it carries no prefix), `seal_stored_secrets` encrypts them at start,
and the next save of the department encrypts it too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from sqlmodel import Session, col, select

from config.secret_key import ensure_secret_key
from config.settings import Settings
from ticketing.models import Department

log = logging.getLogger(__name__)

PREFIX = "fernet:"
_PURPOSE = b"dxe-sealed-secrets:v1"


@lru_cache(maxsize=8)
def _fernet(root: bytes) -> Fernet:
    """The encryption key for stored secrets: HMAC-SHA256(secret key, purpose), never the secret
    key itself (which also signs sessions)."""
    derived = hmac.new(root, _PURPOSE, hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def is_sealed(stored: str | None) -> bool:
    return bool(stored) and str(stored).startswith(PREFIX)


def seal(settings: Settings, plain: str) -> str:
    """`plain` encrypted for the database."""
    token = _fernet(ensure_secret_key(settings)).encrypt(plain.encode("utf-8"))
    return PREFIX + token.decode("ascii")


def unseal(settings: Settings, stored: str | None) -> str | None:
    """The secret a stored value holds: decrypted, or as it is for a row written before
    encryption. None when nothing is stored or it cannot be decrypted (another secret key: the
    log says so, and the caller falls back as for no stored secret)."""
    if not stored:
        return None
    if not stored.startswith(PREFIX):
        return stored  # an old plaintext row
    try:
        return _fernet(ensure_secret_key(settings)).decrypt(stored[len(PREFIX) :]).decode("utf-8")
    except (InvalidToken, ValueError):
        log.error("a stored secret cannot be decrypted: was CALLCENTER_SECRET_KEY changed?")
        return None


def seal_stored_secrets(session: Session, settings: Settings) -> int:
    """Encrypt the hand-off secrets still stored in plain text; returns how many."""
    rows = session.exec(select(Department).where(col(Department.handoff_secret).is_not(None)))
    n = 0
    for dept in rows:
        if dept.handoff_secret and not is_sealed(dept.handoff_secret):
            dept.handoff_secret = seal(settings, dept.handoff_secret)
            session.add(dept)
            n += 1
    if n:
        log.info("hand-off secrets encrypted at rest: %d", n)
    return n
