"""Cache entries: written atomically with the key of everything that produced them and a checksum of their
content, and verified on every read.

An entry that is unreadable, was made from other inputs (its stored key differs), or whose content does not
match its checksum (a flipped byte, a truncated copy) is never used: :func:`read_entry` says why in a warning
and returns None, the caller recomputes, and the new entry replaces the bad one atomically. Callers check
what a checksum cannot: shapes that agree and values that are finite (:func:`check_unit_rows`).
"""
from __future__ import annotations

import errno
import hashlib
import json
import shutil
import warnings
from pathlib import Path

import torch

from ..atomic_io import atomic_path

UNIT_TOLERANCE = 1e-3  # |row| of an L2-normalised float32 embedding


class EntryMismatch(ValueError):
    """A cache entry that must not be used; the message says why."""


def content_checksum(data: dict) -> str:
    """sha256 over an entry's fields (sorted by name; tensors by dtype, shape and bytes), ``checksum`` excluded."""
    digest = hashlib.sha256()
    for name in sorted(data):
        if name == "checksum":
            continue
        value = data[name]
        digest.update(name.encode())
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().contiguous()
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            digest.update(value.numpy().tobytes())
        else:
            digest.update(json.dumps(value, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def write_entry(path: Path, data: dict, key: str) -> None:
    """Save ``data`` with its ``key`` and checksum, atomically (temp file + rename)."""
    data = {**data, "key": key}
    data["checksum"] = content_checksum(data)
    with atomic_path(path) as tmp:
        try:
            torch.save(data, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a full disk as "... inline_container.cc ..."
            free = shutil.disk_usage(tmp.parent).free
            full = free < 2 ** 20
            raise OSError(errno.ENOSPC if full else errno.EIO, f"cannot write the cache entry {path} ("
                          + ("no space left on its device, " if full else "") + f"{free / 2 ** 20:.0f} MiB free): {exc}"
                          ) from exc


def read_entry(path: Path, key: str) -> dict | None:
    """The entry at ``path`` made from ``key``, verified against its checksum; None (with a warning saying why,
    when the file exists) if it is absent or must not be used."""
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict):
            raise EntryMismatch(f"holds a {type(data).__name__}, not an entry")
        if data.get("key") != key:
            raise EntryMismatch("was made from other inputs (its key differs)")
        if data.get("checksum") != content_checksum(data):
            raise EntryMismatch("its content does not match its checksum (corrupted)")
    except Exception as exc:  # any unreadable entry is recomputed, never trusted
        reason = str(exc) if isinstance(exc, EntryMismatch) else f"cannot be read ({type(exc).__name__}: {exc})"
        warnings.warn(f"{path}: cache entry {reason}; recomputing it", stacklevel=2)
        return None
    return data


def check_unit_rows(name: str, unit: torch.Tensor, norm: torch.Tensor, rows: int, dim: int) -> None:
    """``unit`` must be (rows, dim) finite and L2-normalised, ``norm`` (rows,) finite and positive."""
    if tuple(unit.shape) != (rows, dim) or tuple(norm.shape) != (rows,):
        raise EntryMismatch(f"'{name}' has shape {tuple(unit.shape)} / {tuple(norm.shape)}, expected ({rows}, {dim})")
    if not (torch.isfinite(unit).all() and torch.isfinite(norm).all() and (norm > 0).all()):
        raise EntryMismatch(f"'{name}' holds non-finite values or a non-positive norm")
    if rows and ((unit.norm(dim=-1) - 1).abs().max() > UNIT_TOLERANCE):
        raise EntryMismatch(f"'{name}' rows are not unit vectors")
