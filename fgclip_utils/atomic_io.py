"""Atomic file writes and content hashing.

Every cache the study writes goes through :func:`atomic_path`: the payload lands in a temporary file in
the destination folder and is renamed over the destination only once it is complete, so a killed process
never leaves a half-written file that a later run would take as valid. A temporary file is named
``.<name>.<host>-<pid>-<random>.part``; :func:`remove_stale_temporaries` deletes those whose process on this
host has ended (a killed run leaves them behind), and any older than a day.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` if the block succeeds.

    On any exception the temporary file is removed and ``dest`` is left exactly as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.{owner_tag()}-", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def owner_tag() -> str:
    """``<host>-<pid>``: names what this process writes, so a stale file can be told from a live one."""
    return f"{_host()}-{os.getpid()}"


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_TEMPORARY = re.compile(r"^\..+\.([A-Za-z0-9]+)-(\d+)-[^.]*\.part$")
STALE_AFTER_S = 24 * 3600.0


def is_stale(path: Path, pattern: re.Pattern = _TEMPORARY) -> bool:
    """Whether a temporary file ``path`` was left behind: its writer on this host has ended, or it is older than a
    day (a writer on another host sharing the folder, or a name this module did not make)."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    m = pattern.match(path.name)
    if m is not None and m.group(1) == _host():
        return not process_alive(int(m.group(2)))
    return age > STALE_AFTER_S


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the stale ``*.part`` temporary files directly in ``folder``; return what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.part"):
        if is_stale(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_json(dest: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_bytes(dest, json.dumps(obj, indent=1, sort_keys=True).encode())


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Stable hash of a JSON-serialisable object (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
