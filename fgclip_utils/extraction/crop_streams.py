"""Crop embeddings streamed into a resumable file in the embedding cache while they are computed.

A stream file (``crops-<key>.npy``, a :class:`~.row_file.RowFile`) is named by the encoder
(:func:`encoder_identity`) and the crops; beside it, the size and modification time of every image its rows
were made from. An interrupted run resumes after the last sound row, rows of images changed since are made
again, and a run that finds the file busy in another process streams into one of its own. Streams stay until
their rows are stored in a cache entry (:func:`remove_stream`); :func:`remove_orphans` clears what killed runs
left behind.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..atomic_io import atomic_write_json, is_stale, owner_tag, remove_stale_temporaries, sha256_json
from ..cache import cache_folder
from .cache_entries import UNIT_TOLERANCE
from .clip_forward import resolve_precision
from .clip_models import ClipBundle, as_bundles
from .crop_pipeline import CropPlan, PipelineStats, iter_crop_embeddings
from .row_file import RowFile, RowFileBusy

EMBED_VERSION = 3  # 3: norms stored beside the unit vectors, the authors' crop rule, verified entries
_PRIVATE_STREAM = re.compile(r"^crops-[0-9a-f]+-([A-Za-z0-9]+)-(\d+)-[0-9a-f]+\.npy$")


def encoder_identity(bundle: ClipBundle, precision: str = "auto") -> dict:
    """What, of the encoder, makes its embeddings what they are: part of every embedding cache key and meta."""
    return {"model": bundle.name, "weights": bundle.weights_id, "quick_gelu": bundle.quick_gelu,
            "precision": resolve_precision(bundle.device, precision)}


def embeddings_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the embedding cache entries: ``cache_dir``, else ``<cache root>/embeddings``."""
    return Path(cache_dir) if cache_dir else cache_folder("embeddings")


def crop_stream_path(bundle: ClipBundle, plan: CropPlan, cache_dir: str | os.PathLike | None = None,
                     precision: str = "auto") -> Path:
    """The file :func:`crop_embeddings` streams ``plan``'s embeddings into, named by the encoder and the crops."""
    key = sha256_json({"version": EMBED_VERSION, **encoder_identity(bundle, precision),
                       "scale_factor": plan.scale_factor, "crops": plan.keys()})
    return embeddings_dir(cache_dir) / f"crops-{key[:20]}.npy"


def file_states(plan: CropPlan) -> list[list]:
    """(size, modification time) of each image of ``plan``, in plan order."""
    states = []
    for im in plan.images:
        try:
            st = os.stat(im.path)
            states.append([st.st_size, st.st_mtime_ns])
        except FileNotFoundError:
            states.append([-1, -1])
    return states


def files_record(stream: Path) -> Path:
    """Where the states of the image files a stream's rows were made from are kept."""
    return stream.with_name(stream.stem + ".files.json")


def _rows_still_valid(plan: CropPlan, stream: Path, states: list[list]) -> int:
    """How many leading rows of ``stream`` were made from image files that are unchanged since: up to the first
    row of the first image whose size or modification time differs (0 without a record)."""
    try:
        recorded = json.loads(files_record(stream).read_text())
    except (OSError, ValueError):
        return 0
    if not isinstance(recorded, list) or len(recorded) != len(states):
        return 0
    row = 0
    for im, old, new in zip(plan.images, recorded, states, strict=True):
        if old != new:
            return row
        row += len(im.boxes)
    return row


def _sound_rows(rows: np.ndarray) -> np.ndarray:
    """Rows ``[unit vector, norm]`` as the crop pipeline writes them: finite, unit, positive norm."""
    unit, norm = rows[:, :-1], rows[:, -1]
    return (np.isfinite(rows).all(axis=1) & (norm > 0)
            & (np.abs(np.linalg.norm(unit, axis=1) - 1) <= UNIT_TOLERANCE))


def crop_embeddings(backbones: ClipBundle | Sequence[ClipBundle], plan: CropPlan, *,
                    cache_dir: str | os.PathLike | None = None, batch_size: int = 256, workers: int | None = None,
                    precision: str = "auto", progress: bool = True, desc: str = "crops",
                    stats: PipelineStats | None = None) -> tuple[torch.Tensor, Path] | list[tuple[torch.Tensor, Path]]:
    """The (rows, d + 1) embeddings (unit rows, norm last) of a :class:`~.crop_pipeline.CropPlan` and the path
    of the file they were streamed into while they were computed; for a sequence of backbones (one shared-decode
    group), a list of those pairs, every image decoded once for all of them.

    An interrupted run resumes after the last sound row that every backbone's file holds. A file stays until the
    caller has stored the result elsewhere and deletes it. If another process is writing the same file, this one
    streams into a file of its own (``crops-<key>-<host>-<pid>-<random>.npy``)."""
    bundles = as_bundles(backbones)
    states = file_states(plan)
    stores = []
    try:
        for bundle in bundles:
            path = crop_stream_path(bundle, plan, cache_dir, precision)
            dim = bundle.embed_dim + 1
            try:
                store = RowFile(path, len(plan), dim, check=_sound_rows)
                store.truncate(_rows_still_valid(plan, path, states))  # rows of images changed since are made again
            except RowFileBusy:  # the same extraction is running in another process: work apart, no resuming
                store = RowFile(path.with_name(f"{path.stem}-{owner_tag()}-{uuid.uuid4().hex[:8]}.npy"), len(plan),
                                dim, check=_sound_rows)
            stores.append(store)
            atomic_write_json(files_record(store.path), states)
        skip = min(store.done for store in stores)
        for first, embs in iter_crop_embeddings(bundles, plan, batch_size=batch_size, workers=workers,
                                                precision=precision, skip_rows=skip, progress=progress,
                                                desc=desc, stats=stats):
            for store, emb in zip(stores, embs, strict=True):
                store.write(first, emb)  # rows a store already holds are skipped
        out = [(store.read(), store.path) for store in stores]
        return out[0] if isinstance(backbones, ClipBundle) else out
    finally:
        for store in stores:
            store.close()


def remove_stream(stream: Path) -> None:
    """Delete a crop stream file and its record of image files (once its rows are stored elsewhere)."""
    stream.unlink(missing_ok=True)
    files_record(stream).unlink(missing_ok=True)


def remove_orphans(folder: Path) -> list[Path]:
    """Delete what killed runs left in the embedding cache: ``.part`` temporaries and per-process crop files
    whose writer on this host has ended (or older than a day). The shared ``crops-<key>.npy`` stays: a later
    run resumes it."""
    removed = remove_stale_temporaries(folder)
    if folder.is_dir():
        for path in folder.glob("crops-*-*.npy"):
            if _PRIVATE_STREAM.match(path.name) and is_stale(path, _PRIVATE_STREAM):
                remove_stream(path)
                removed.append(path)
    return removed
