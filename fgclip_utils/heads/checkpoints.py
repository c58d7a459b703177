"""Trained heads on disk: named by a key of everything that made them, verified when read.

A checkpoint is a plain state dict (loaded with ``weights_only=True``) plus a sidecar ``<name>.json`` holding
the key, what produced it, and the state file's sha256; the sidecar is written last, so a checkpoint without
one (a run killed mid-training) is incomplete. :func:`load_head_state` refuses, with an error naming the file,
a checkpoint that is incomplete, was made from other inputs, does not match its sha256, or does not fit the
head; :func:`find_head` treats all of those as "not there", so the caller trains anew.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from ..atomic_io import atomic_path, atomic_write_json, sha256_file, sha256_json
from ..evaluation.similarity import SimilarityHead

T = TypeVar("T")


class CheckpointError(ValueError):
    """A head checkpoint that must not be loaded; the message names the file and says why."""


def checkpoint_key(**parts) -> str:
    """A short key of everything that made a head (data keys, settings, start weights, code version)."""
    return sha256_json(parts)[:16]


def sidecar(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def save_head(path: str | os.PathLike, head: SimilarityHead, key: str, **info) -> Path:
    """Write ``head``'s state dict to ``path`` and then its sidecar (key, ``info``, sha256), both atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(head.state_dict(), tmp)
    atomic_write_json(sidecar(path), {"key": key, "kind": head.kind, "sha256": sha256_file(path), **info})
    return path


def read_sidecar(path: str | os.PathLike) -> dict | None:
    try:
        data = json.loads(sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_head_state(path: str | os.PathLike, head: SimilarityHead, key: str | None = None) -> SimilarityHead:
    """Load the checkpoint at ``path`` into ``head`` (on CPU, eval mode), after checking its sidecar (``key``
    when given, sha256). Raises :class:`CheckpointError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    meta = read_sidecar(path)
    if meta is None:
        raise CheckpointError(f"{path}: no readable {sidecar(path).name} beside it: the training that wrote it did "
                              "not finish")
    if key is not None and meta.get("key") != key:
        raise CheckpointError(f"{path}: made from other inputs (key {meta.get('key')}, expected {key})")
    actual = sha256_file(path)
    if meta.get("sha256") != actual:
        raise CheckpointError(f"{path}: its content (sha256 {actual[:12]}…) is not what was saved "
                              f"({str(meta.get('sha256'))[:12]}…): the file is damaged")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the message names the file, whatever went wrong
        raise CheckpointError(f"{path}: not a loadable state dict ({type(exc).__name__}: {exc})") from exc
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not torch.isfinite(v).all()] if isinstance(state, dict) else []
    if bad:
        raise CheckpointError(f"{path}: {bad[0]!r} holds non-finite weights")
    try:
        head.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: does not fit a {head.kind} head ({exc})") from exc
    return head.cpu().eval()


def train_or_load(path: str | os.PathLike, key: str, build: Callable[[], SimilarityHead],
                  train: Callable[[SimilarityHead], T]) -> tuple[SimilarityHead | None, T | None]:
    """``(head, None)`` loaded from a usable checkpoint at ``path`` made under ``key`` (verified, loaded with
    ``weights_only=True``), else ``(None, train(build()))``: the one way both recipes reuse a trained head. An
    unusable checkpoint is named in a warning before training again."""
    found, why = find_head(path, build(), key)
    if found is not None:
        return found, None
    if Path(path).exists():
        warnings.warn(f"not using {path}: {why}; training the head again", stacklevel=3)
    return None, train(build())


def find_head(path: str | os.PathLike, head: SimilarityHead, key: str) -> tuple[SimilarityHead | None, str]:
    """``(head, "")`` loaded from a usable checkpoint at ``path``, else ``(None, why not)``."""
    if not Path(path).exists():
        return None, "no checkpoint yet"
    try:
        return load_head_state(path, head, key), ""
    except CheckpointError as exc:
        return None, str(exc)
