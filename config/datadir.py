"""The data dir holds the database, the Redis dump, recordings and the signing key: only the
service's own user may read it. Directories 0700, files 0600 (issue #17 §7).

`secure_data_dir` creates the dir if needed and tightens what is already there (a data dir made
under the default umask 022 was world-readable); `private_umask` makes every file a process
creates from then on private too (umask 077, inherited by child processes: the web, workers and
the embedded Redis started by `callcenter run` / `up`)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

log = structlog.get_logger("config.datadir")

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_umask() -> int:
    """Set umask 077 for this process and its children; returns the previous one."""
    return os.umask(0o077)


def secure_data_dir(data_dir: Path) -> int:
    """mkdir -p with 0700, then every directory below 0700 and every regular file 0600 (symlinks
    are not followed). Returns how many modes were changed. A path we cannot chmod (another
    owner) is logged and left alone."""
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    changed = _fix(root, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            changed += _fix(Path(dirpath) / name, DIR_MODE)
        for name in filenames:
            changed += _fix(Path(dirpath) / name, FILE_MODE)
    if changed:
        log.info("data_dir_permissions_tightened", path=str(root), changed=changed)
    return changed


def _fix(path: Path, mode: int) -> int:
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            return 0
        if stat.S_IMODE(st.st_mode) & ~mode == 0:  # already no wider than wanted
            return 0
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)
        return 1
    except FileNotFoundError:  # removed meanwhile (a WAL file, a temporary dump)
        return 0
    except PermissionError:
        log.warning("data_dir_permission_not_changed", path=str(path))
        return 0
