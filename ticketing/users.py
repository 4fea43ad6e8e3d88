"""Rules on console users that every way of making one obeys: the web's administration (API and
pages, agent_console.user_admin) and the `callcenter user` commands.

Passwords are hashed with Argon2id (argon2-cffi's defaults) by `hash_password`, here and nowhere
else. Usernames are unique regardless of case ("Admin" and "admin" cannot coexist; a unique index on
lower(username) backs the check). A new password needs MIN_PASSWORD_LEN visible characters and
must not be on the small bundled list of common ones (ticketing/data/common_passwords.txt).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from ticketing.models import User

MIN_PASSWORD_LEN = 8
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common_passwords.txt"


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text("utf-8").splitlines()
    return frozenset(x.strip().lower() for x in lines if x.strip() and not x.startswith("#"))


def password_problem(password: str) -> str | None:
    """Why a new password is refused (a Chinese message), or None. Only spaces, NULs or other
    invisible characters are refused (the length check counted them), as is a common one."""
    visible = "".join(ch for ch in password if ch.isprintable() and not ch.isspace())
    if len(visible) < MIN_PASSWORD_LEN:
        return f"密码至少需要 {MIN_PASSWORD_LEN} 个可见字符（不能只有空格或不可见字符）"
    if password.strip().lower() in _common_passwords():
        return "密码过于常见，请换一个不易被猜到的密码"
    return None


def hash_password(password: str) -> str:
    """The one hasher: the web's administration, the CLI and the first admin all store this."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def username_taken(session: Session, username: str) -> bool:
    """Whether a user of this name exists, whatever its case."""
    return (
        session.exec(select(User.id).where(func.lower(User.username) == username.lower())).first()
        is not None
    )
