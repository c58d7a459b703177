"""Frozen-CLIP embeddings of the splits' object crops and captions, with an on-disk cache.

:func:`embed_splits` extracts several splits in one pass: the crops of all of them go through the crop
pipeline (:mod:`fgclip_utils.extraction.crop_pipeline`) once, so an object shared by several splits is encoded
once and each image decoded once; every distinct caption of all of them is encoded once
(:func:`fgclip_utils.extraction.clip_forward.encode_texts`). Crop embeddings stream into a resumable file in the
cache (:mod:`fgclip_utils.extraction.row_file`) while they are computed; that file is deleted only once every
split's entry is safely written, so a failure after the crops never throws the crops away.

Each split gets its own cache entry, keyed by everything that produced it (model, weights, precision, split file
content, scale factor, which images were available and each one's size and modification time, code version),
written atomically with that key and a checksum, and verified when read (:mod:`~.cache_entries`): any change of
input makes a new entry, and a damaged entry is recomputed instead of used.

Embeddings are stored L2-normalised (what cosine similarity and the study's heads take) with each one's norm
before normalising, so the raw embedding (what the paper's heads take) is ``image * image_norm``.
"""
from __future__ import annotations

import json
import os
import re
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..atomic_io import atomic_write_json, is_stale, owner_tag, remove_stale_temporaries, sha256_file, sha256_json
from ..cache import cache_folder
from ..data.benchmark_data import Benchmark
from ..data.coco_captions import CaptionSet
from ..data.coco_images import declared_size, image_path
from ..data.fgovd import Split
from .cache_entries import UNIT_TOLERANCE, EntryMismatch, check_unit_rows, read_entry, write_entry
from .clip_forward import encode_texts, resolve_precision
from .clip_models import ClipBundle
from .crop_pipeline import CropPlan, PipelineStats, iter_crop_embeddings_many, plan_crops, shared_decode_groups
from .row_file import RowFile, RowFileBusy

if TYPE_CHECKING:
    from ..profiles import Profile

EMBED_VERSION = 3  # 3: norms stored beside the unit vectors, the authors' crop rule, verified entries
_PRIVATE_STREAM = re.compile(r"^crops-[0-9a-f]+-([A-Za-z0-9]+)-(\d+)-[0-9a-f]+\.npy$")


class UnitAndNorms:
    """Embeddings kept as unit vectors (``image``, ``text``) with each one's norm before normalising
    (``image_norm``, ``text_norm``; None means 1), so one extraction serves heads of either input space."""

    def inputs(self, space: str = "unit") -> tuple[torch.Tensor, torch.Tensor]:
        """(image, text) embeddings in ``space``: ``"unit"`` (L2-normalised) or ``"raw"`` (as CLIP output them)."""
        if space == "unit":
            return self.image, self.text
        if space == "raw":
            return _raw(self.image, self.image_norm), _raw(self.text, self.text_norm)
        raise ValueError(f"space must be 'unit' or 'raw', got {space!r}")


@dataclass
class SplitEmbeddings(UnitAndNorms):
    """Embeddings of one split, one row per annotation whose image is available.

    ``candidates()`` gives, per row, the caption indices ``[positive, negative_1, ...]`` padded with -1 (the
    negatives in file order).
    """

    image: torch.Tensor  # (N, d) L2-normalised crop embeddings
    text: torch.Tensor  # (C, d) L2-normalised caption embeddings
    captions: list[str]  # (C,) distinct captions
    positive: torch.Tensor  # (N,) index into captions
    negatives: torch.Tensor  # (N, K) indices into captions, -1 = no negative
    annotation_ids: torch.Tensor  # (N,)
    n_missing_images: int = 0  # annotations dropped because their image is unavailable
    meta: dict = field(default_factory=dict)
    image_norm: torch.Tensor | None = None  # (N,) norm of each crop embedding before normalising; None: 1
    text_norm: torch.Tensor | None = None  # (C,)

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def candidates(self) -> torch.Tensor:
        return torch.cat([self.positive[:, None], self.negatives], dim=1)

    @property
    def rankable(self) -> torch.Tensor:
        """Boolean mask of rows with at least one negative."""
        return (self.negatives >= 0).any(dim=1) if self.negatives.numel() else \
            torch.zeros(len(self), dtype=torch.bool)

    @property
    def n_skipped(self) -> int:
        return int((~self.rankable).sum())

    def to_dict(self) -> dict:
        return {"image": self.image, "text": self.text, "captions": list(self.captions),
                "positive": self.positive, "negatives": self.negatives, "annotation_ids": self.annotation_ids,
                "n_missing_images": self.n_missing_images, "meta": dict(self.meta),
                "image_norm": self.image_norm, "text_norm": self.text_norm}


def _raw(unit: torch.Tensor, norm: torch.Tensor | None) -> torch.Tensor:
    return unit if norm is None else unit * norm[:, None]


def encoder_identity(bundle: ClipBundle, precision: str = "auto") -> dict:
    """What, of the encoder, makes its embeddings what they are: part of every embedding cache key and meta."""
    return {"model": bundle.name, "weights": bundle.weights_id, "quick_gelu": bundle.quick_gelu,
            "precision": resolve_precision(bundle.device, precision)}


def image_fingerprint(image_root: str | os.PathLike, records: Iterable[dict]) -> str:
    """sha256 of each image's relative path, size and modification time: changes when any image file does."""
    rows = []
    for rec in records:
        path = image_path(image_root, rec)
        try:
            st = path.stat()
            rows.append((rec["file_name"], st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            rows.append((rec["file_name"], -1, -1))
    return sha256_json(sorted(rows))


def cache_key(bundle: ClipBundle, split: Split, scale_factor: float, available: Iterable[int],
              precision: str = "auto", image_root: str | os.PathLike | None = None) -> str:
    available = sorted(available)
    images = image_fingerprint(image_root, [split.images[i] for i in available]) if image_root is not None else None
    return sha256_json({
        "version": EMBED_VERSION, **encoder_identity(bundle, precision),
        "split_sha256": sha256_file(split.path), "scale_factor": float(scale_factor),
        "available_images": available, "image_files": images,
    })


def embeddings_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the embedding cache entries: ``cache_dir``, else ``<cache root>/embeddings``."""
    return Path(cache_dir) if cache_dir else cache_folder("embeddings")


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


def _check_split_entry(data: dict) -> SplitEmbeddings:
    try:
        emb = SplitEmbeddings(**{k: v for k, v in data.items() if k not in ("key", "checksum")})
    except TypeError as exc:
        raise EntryMismatch(f"has another layout ({exc})") from exc
    if not all(isinstance(t, torch.Tensor) for t in (emb.image, emb.text, emb.image_norm, emb.text_norm,
                                                      emb.positive, emb.negatives, emb.annotation_ids)):
        raise EntryMismatch("lacks a tensor it should hold")
    n, c = len(emb), len(emb.captions)
    d = int(emb.image.shape[-1]) if emb.image.ndim == 2 else -1
    check_unit_rows("image", emb.image, emb.image_norm, n, d)
    check_unit_rows("text", emb.text, emb.text_norm, c, d)
    if tuple(emb.positive.shape) != (n,) or emb.negatives.ndim != 2 or emb.negatives.shape[0] != n \
            or tuple(emb.annotation_ids.shape) != (n,):
        raise EntryMismatch("'positive', 'negatives' or 'annotation_ids' do not have one row per crop")
    in_range = ((emb.positive >= 0) & (emb.positive < c)).all() and ((emb.negatives >= -1) & (emb.negatives < c)).all()
    if n and not in_range:
        raise EntryMismatch("caption indices point outside 'captions'")
    return emb


def load_cached(path: Path, key: str) -> SplitEmbeddings | None:
    """A split's cached embeddings made from ``key``, or None if the entry is absent or must not be used
    (unreadable, other inputs, corrupted, another layout, inconsistent shapes, non-finite values)."""
    data = read_entry(path, key)
    if data is None:
        return None
    try:
        return _check_split_entry(data)
    except EntryMismatch as exc:
        warnings.warn(f"{path}: cache entry {exc}; recomputing it", stacklevel=2)
        return None


def crop_stream_path(bundle: ClipBundle, plan: CropPlan, cache_dir: str | os.PathLike | None = None,
                     precision: str = "auto") -> Path:
    """The file :func:`crop_embeddings` streams ``plan``'s embeddings into, named by the encoder and the crops;
    which image files the rows were made from is kept beside it (:func:`_files_sidecar`)."""
    key = sha256_json({"version": EMBED_VERSION, **encoder_identity(bundle, precision),
                       "scale_factor": plan.scale_factor, "crops": plan.keys()})
    return embeddings_dir(cache_dir) / f"crops-{key[:20]}.npy"


def _file_states(plan: CropPlan) -> list[list]:
    """(size, modification time) of each image of ``plan``, in plan order."""
    states = []
    for im in plan.images:
        try:
            st = os.stat(im.path)
            states.append([st.st_size, st.st_mtime_ns])
        except FileNotFoundError:
            states.append([-1, -1])
    return states


def _files_sidecar(stream: Path) -> Path:
    return stream.with_name(stream.stem + ".files.json")


def _rows_still_valid(plan: CropPlan, stream: Path, states: list[list]) -> int:
    """How many leading rows of ``stream`` were made from image files that are unchanged since: up to the first
    row of the first image whose size or modification time differs (0 without a record)."""
    try:
        recorded = json.loads(_files_sidecar(stream).read_text())
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


def crop_embeddings_many(bundles: Sequence[ClipBundle], plan: CropPlan, *,
                         cache_dir: str | os.PathLike | None = None, batch_size: int = 256, workers: int | None = None,
                         precision: str = "auto", progress: bool = True, desc: str = "crops",
                         stats: PipelineStats | None = None) -> list[tuple[torch.Tensor, Path]]:
    """Per backbone of ``bundles`` (one shared-decode group: the same transform geometry), the (rows, d + 1)
    embeddings (unit rows, norm last) of a :class:`~fgclip_utils.extraction.crop_pipeline.CropPlan` and the path
    of the file they were streamed into, ``crops-<key>.npy`` in the cache, while they were computed. Every image
    is decoded once for all of them.

    An interrupted run resumes after the last sound row that every backbone's file holds. A file stays until the
    caller has stored the result elsewhere and deletes it. If another process is writing the same file, this one
    streams into a file of its own (``crops-<key>-<host>-<pid>-<random>.npy``)."""
    states = _file_states(plan)
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
            atomic_write_json(_files_sidecar(store.path), states)
        skip = min(store.done for store in stores)
        for first, embs in iter_crop_embeddings_many(bundles, plan, batch_size=batch_size, workers=workers,
                                                     precision=precision, skip_rows=skip, progress=progress,
                                                     desc=desc, stats=stats):
            for store, emb in zip(stores, embs, strict=True):
                store.write(first, emb)  # rows a store already holds are skipped
        return [(store.read(), store.path) for store in stores]
    finally:
        for store in stores:
            store.close()


def crop_embeddings(bundle: ClipBundle, plan: CropPlan, **kwargs) -> tuple[torch.Tensor, Path]:
    """:func:`crop_embeddings_many` for one backbone: its (rows, d + 1) embeddings and the stream file's path."""
    return crop_embeddings_many([bundle], plan, **kwargs)[0]


def remove_stream(stream: Path) -> None:
    """Delete a crop stream file and its record of image files (once its rows are stored elsewhere)."""
    stream.unlink(missing_ok=True)
    _files_sidecar(stream).unlink(missing_ok=True)


@dataclass
class _Layout:
    """A split's rows (its available annotations, grouped by image) and its distinct captions, sorted."""

    split: Split
    annotations: list
    captions: list[str]
    entry: Path
    key: str


def _layout(split: Split, available: set, entry: Path, key: str) -> _Layout:
    by_image: dict[int, list] = defaultdict(list)
    for ann in split.annotations:
        if ann.image_id in available:
            by_image[ann.image_id].append(ann)
    ordered = [a for anns in by_image.values() for a in anns]
    captions = sorted({c for a in ordered for c in (a.positive, *a.negatives)})
    return _Layout(split, ordered, captions, entry, key)


def _assemble(layout: _Layout, image: torch.Tensor, text: torch.Tensor, meta: dict) -> SplitEmbeddings:
    index = {c: i for i, c in enumerate(layout.captions)}
    ordered = layout.annotations
    k = max((len(a.negatives) for a in ordered), default=0)
    negatives = torch.full((len(ordered), k), -1, dtype=torch.long)
    for row, ann in enumerate(ordered):
        negatives[row, :len(ann.negatives)] = torch.tensor([index[c] for c in ann.negatives], dtype=torch.long)
    return SplitEmbeddings(
        image=image[:, :-1].contiguous(), image_norm=image[:, -1].contiguous(),
        text=text[:, :-1].contiguous(), text_norm=text[:, -1].contiguous(), captions=list(layout.captions),
        positive=torch.tensor([index[a.positive] for a in ordered], dtype=torch.long),
        negatives=negatives, annotation_ids=torch.tensor([a.id for a in ordered], dtype=torch.long),
        n_missing_images=len(layout.split.annotations) - len(ordered),
        meta={**meta, "split": layout.split.name, "key": layout.key,
              "identical_negatives": len(layout.split.identical_negatives)})


def embed_splits_many(bundles: Sequence[ClipBundle], splits: Sequence[Split] | Mapping[str, Split],
                      image_root: str | os.PathLike, *, scale_factor: float = 1.0,
                      available: Mapping[str, Iterable[int]] | None = None, cache_dir: str | os.PathLike | None = None,
                      batch_size: int = 256, workers: int | None = None, precision: str = "auto",
                      progress: bool = True, stats: PipelineStats | None = None) -> list[dict[str, SplitEmbeddings]]:
    """:func:`embed_splits` for several backbones at once, one dict per backbone: the backbones whose transforms
    share their geometry and miss the same cache entries are extracted together, each image decoded and each
    crop resized once for all of them (:func:`~.crop_pipeline.iter_crop_embeddings_many`). The entries are
    exactly those :func:`embed_splits` writes and reads, so a sweep and notebooks 01-03 share one cache."""
    splits = list(splits.values()) if isinstance(splits, Mapping) else list(splits)
    folder = embeddings_dir(cache_dir)
    remove_orphans(folder)
    avail_of = {}
    for split in splits:
        if available is not None and split.name in available:
            avail_of[split.name] = set(available[split.name])
        else:
            avail_of[split.name] = {i for i, rec in split.images.items() if image_path(image_root, rec).exists()}
    results: list[dict[str, SplitEmbeddings]] = [{} for _ in bundles]
    todo: list[list[_Layout]] = [[] for _ in bundles]
    for b, bundle in enumerate(bundles):
        for split in splits:
            key = cache_key(bundle, split, scale_factor, avail_of[split.name], precision, image_root)
            entry = folder / f"{bundle.name}-{split.name}-{key[:20]}.pt"
            cached = load_cached(entry, key)
            if cached is not None:
                cached.meta["from_cache"] = True
                results[b][split.name] = cached
            else:
                todo[b].append(_layout(split, avail_of[split.name], entry, key))

    # backbones that can share a decode and miss the same splits are extracted together
    groups: dict[tuple, list[int]] = {}
    for g in shared_decode_groups(bundles):
        for b in g:
            if todo[b]:
                groups.setdefault((g[0], tuple(lay.split.name for lay in todo[b])), []).append(b)
    def crop_of(layout: _Layout, ann) -> tuple:
        return image_path(image_root, layout.split.images[ann.image_id]), ann.bbox

    for members in groups.values():
        layouts = todo[members[0]]
        sizes = {str(image_path(image_root, rec)): declared_size(rec)
                 for lay in layouts for rec in lay.split.images.values()}
        plan = plan_crops([crop_of(lay, a) for lay in layouts for a in lay.annotations], scale_factor, sizes)
        names = "+".join(lay.split.name for lay in layouts)
        who = f" ({len(members)} backbones)" if len(members) > 1 else ""
        images = crop_embeddings_many([bundles[b] for b in members], plan, cache_dir=cache_dir,
                                      batch_size=batch_size, workers=workers, precision=precision, progress=progress,
                                      desc=f"crops {names}{who}", stats=stats)
        captions = sorted({c for lay in layouts for c in lay.captions})
        caption_row = {c: i for i, c in enumerate(captions)}
        for b, (image, stream) in zip(members, images, strict=True):
            bundle = bundles[b]
            start = time.perf_counter()
            text = encode_texts(bundle, captions, batch_size=batch_size, progress=progress, precision=precision,
                                with_norms=True)
            if stats is not None:
                stats.extra.update(captions=len(captions),
                                   captions_s=stats.extra.get("captions_s", 0.0) + time.perf_counter() - start)
            meta = {**encoder_identity(bundle, precision), "scale_factor": float(scale_factor)}
            for lay in todo[b]:
                rows = torch.tensor([plan.row(*crop_of(lay, a)) for a in lay.annotations], dtype=torch.long)
                own_image = image if torch.equal(rows, torch.arange(len(image))) else image[rows]
                own_text = text if lay.captions == captions else text[[caption_row[c] for c in lay.captions]]
                result = _assemble(lay, own_image, own_text, meta)
                write_entry(lay.entry, result.to_dict(), lay.key)
                result.meta["from_cache"] = False
                results[b][lay.split.name] = result
            remove_stream(stream)  # every entry of this backbone is written: its crops live on there
    return [{split.name: res[split.name] for split in splits} for res in results]


def embed_splits(bundle: ClipBundle, splits: Sequence[Split] | Mapping[str, Split], image_root: str | os.PathLike, *,
                 scale_factor: float = 1.0, available: Mapping[str, Iterable[int]] | None = None,
                 cache_dir: str | os.PathLike | None = None, batch_size: int = 256, workers: int | None = None,
                 precision: str = "auto", progress: bool = True, stats: PipelineStats | None = None
                 ) -> dict[str, SplitEmbeddings]:
    """Embed every annotation of each split whose image is available, reusing each split's cache entry when
    it can; the splits not cached are extracted together (shared crops and captions encoded once).

    ``available`` maps a split name to the image ids on disk (e.g. ``fetch_images(...).available``); by
    default, every image of the split that exists under ``image_root``. ``workers`` are the crop pipeline's
    DataLoader workers (None: :func:`~.crop_pipeline.default_workers`; 0: none). ``precision`` is
    ``"auto"`` (bf16 autocast on a GPU with native bf16, fp16 on an older one, fp32 on CPU), ``"fp32"``,
    ``"bf16"`` or ``"fp16"``.
    """
    return embed_splits_many([bundle], splits, image_root, scale_factor=scale_factor, available=available,
                             cache_dir=cache_dir, batch_size=batch_size, workers=workers, precision=precision,
                             progress=progress, stats=stats)[0]


def embed_split(bundle: ClipBundle, split: Split, image_root: str | os.PathLike, *, scale_factor: float = 1.0,
                available: Iterable[int] | None = None, **kwargs) -> SplitEmbeddings:
    """One split's embeddings (see :func:`embed_splits`); ``available`` is the image ids on disk."""
    avail = None if available is None else {split.name: available}
    return embed_splits(bundle, [split], image_root, scale_factor=scale_factor, available=avail,
                        **kwargs)[split.name]


def embed_benchmark(bundle: ClipBundle, bench: Benchmark, splits=None, scale_factor: float = 1.0,
                    batch_size: int = 256, progress: bool = True, **kwargs) -> dict[str, SplitEmbeddings]:
    """Embeddings of the chosen splits of ``bench`` (default: all), each from the cache when it can be; the
    others are extracted together (``kwargs``: ``workers``, ``precision``, see :func:`embed_splits`)."""
    names = list(splits or bench.splits)
    return embed_splits(bundle, [bench.splits[n] for n in names], bench.image_root, scale_factor=scale_factor,
                        available={n: bench.available[n] for n in names}, batch_size=batch_size,
                        progress=progress, **kwargs)


def embed_benchmark_many(bundles: Sequence[ClipBundle], bench: Benchmark, splits=None, scale_factor: float = 1.0,
                         batch_size: int = 256, progress: bool = True, **kwargs) -> list[dict[str, SplitEmbeddings]]:
    """:func:`embed_benchmark` for several backbones, sharing decodes where their transforms allow
    (:func:`embed_splits_many`)."""
    names = list(splits or bench.splits)
    return embed_splits_many(bundles, [bench.splits[n] for n in names], bench.image_root, scale_factor=scale_factor,
                             available={n: bench.available[n] for n in names}, batch_size=batch_size,
                             progress=progress, **kwargs)


@dataclass
class CaptionEmbeddings(UnitAndNorms):
    """Whole-image and caption embeddings of a :class:`~fgclip_utils.data.coco_captions.CaptionSet`: unit
    vectors and each one's norm before normalising."""

    image: torch.Tensor
    text: torch.Tensor
    caption_set: CaptionSet
    image_norm: torch.Tensor | None = None
    text_norm: torch.Tensor | None = None
    key: str = ""  # the cache key it was made from


def _caption_set_key(bundle: ClipBundle, cs: CaptionSet, image_root, precision: str) -> str:
    return sha256_json({"version": EMBED_VERSION, **encoder_identity(bundle, precision), "images": cs.images,
                        "captions": cs.captions, "image_files": image_fingerprint(image_root, cs.images)})


def _cached_caption_set(entry: Path, key: str, cs: CaptionSet) -> CaptionEmbeddings | None:
    data = read_entry(entry, key)
    if data is None:
        return None
    try:
        d = int(data["image"].shape[-1])
        check_unit_rows("image", data["image"], data["image_norm"], len(cs.images), d)
        check_unit_rows("text", data["text"], data["text_norm"], len(cs.captions), d)
        return CaptionEmbeddings(data["image"], data["text"], cs, data["image_norm"], data["text_norm"], key)
    except (EntryMismatch, KeyError, AttributeError) as exc:
        warnings.warn(f"{entry}: cache entry {exc}; recomputing it", stacklevel=3)
        return None


def embed_caption_set_many(bundles: Sequence[ClipBundle], cs: CaptionSet, image_root: str | os.PathLike,
                           batch_size: int = 256, cache_dir: str | os.PathLike | None = None, progress: bool = True,
                           workers: int | None = None, precision: str = "auto") -> list[CaptionEmbeddings]:
    """:func:`embed_caption_set` for several backbones, each image decoded once per group of backbones whose
    transforms share their geometry; the cache entries are those :func:`embed_caption_set` reads."""
    folder = embeddings_dir(cache_dir)
    remove_orphans(folder)
    keys = [_caption_set_key(b, cs, image_root, precision) for b in bundles]
    entries = [folder / f"{b.name}-{cs.name}-{k[:20]}.pt" for b, k in zip(bundles, keys, strict=True)]
    results = [_cached_caption_set(e, k, cs) for e, k in zip(entries, keys, strict=True)]
    paths = [image_path(image_root, rec) for rec in cs.images]
    missing = [[b for b in group if results[b] is None] for group in shared_decode_groups(bundles)]
    missing = [members for members in missing if members]
    if missing:  # one plan serves every group: the same images, whole
        plan = plan_crops([(p, None) for p in paths], sizes={str(p): declared_size(rec) for p, rec in
                                                             zip(paths, cs.images, strict=True)})
        rows = torch.tensor([plan.row(p, None) for p in paths], dtype=torch.long)
    for members in missing:
        who = f" ({len(members)} backbones)" if len(members) > 1 else ""
        images = crop_embeddings_many([bundles[b] for b in members], plan, cache_dir=cache_dir, batch_size=batch_size,
                                      workers=workers, precision=precision, progress=progress, desc=f"{cs.name}{who}")
        for b, (image, stream) in zip(members, images, strict=True):
            img = image[rows]
            txt = encode_texts(bundles[b], cs.captions, batch_size=batch_size, progress=progress, precision=precision,
                               with_norms=True)
            result = CaptionEmbeddings(img[:, :-1].contiguous(), txt[:, :-1].contiguous(), cs,
                                       img[:, -1].contiguous(), txt[:, -1].contiguous(), keys[b])
            write_entry(entries[b], {"image": result.image, "text": result.text, "image_norm": result.image_norm,
                                     "text_norm": result.text_norm}, keys[b])
            remove_stream(stream)
            results[b] = result
    return results


def embed_caption_set(bundle: ClipBundle, cs: CaptionSet, image_root: str | os.PathLike, batch_size: int = 256,
                      cache_dir: str | os.PathLike | None = None, progress: bool = True, workers: int | None = None,
                      precision: str = "auto") -> CaptionEmbeddings:
    """Whole-image and caption embeddings, cached by model, weights, precision, the caption set's content and
    its image files; the images go through the crop pipeline (one whole-image "crop" each)."""
    return embed_caption_set_many([bundle], cs, image_root, batch_size, cache_dir, progress, workers, precision)[0]


def profile_embeddings(profile: Profile, bundle: ClipBundle, bench: Benchmark, splits=None, progress: bool = True
                       ) -> dict[str, SplitEmbeddings]:
    """:func:`embed_benchmark` with ``profile``'s extraction settings (scale factor, batch size, precision): the one
    way notebooks and recipes extract split embeddings, so that training, validation and test rows of a run share
    one precision and one cache."""
    ex = profile.extract
    return embed_benchmark(bundle, bench, splits, ex.scale_factor, ex.batch_size, progress, precision=ex.precision)


def profile_embeddings_many(profile: Profile, bundles: Sequence[ClipBundle], bench: Benchmark, splits=None,
                            progress: bool = True) -> list[dict[str, SplitEmbeddings]]:
    """:func:`profile_embeddings` for several backbones, one decode per group of shared transform geometry: the
    cache entries are those :func:`profile_embeddings` reads, so a sweep fills the cache of notebooks 01-03."""
    ex = profile.extract
    return embed_benchmark_many(bundles, bench, splits, ex.scale_factor, ex.batch_size, progress,
                                precision=ex.precision)


def profile_caption_embeddings_many(profile: Profile, bundles: Sequence[ClipBundle], cs: CaptionSet,
                                    image_root: str | os.PathLike, progress: bool = True) -> list[CaptionEmbeddings]:
    """:func:`profile_caption_embeddings` for several backbones, sharing decodes (:func:`embed_caption_set_many`)."""
    ex = profile.extract
    return embed_caption_set_many(bundles, cs, image_root, ex.batch_size, progress=progress, precision=ex.precision)


def profile_caption_embeddings(profile: Profile, bundle: ClipBundle, cs: CaptionSet, image_root: str | os.PathLike,
                               progress: bool = True) -> CaptionEmbeddings:
    """:func:`embed_caption_set` with ``profile``'s extraction settings (batch size, precision)."""
    ex = profile.extract
    return embed_caption_set(bundle, cs, image_root, ex.batch_size, progress=progress, precision=ex.precision)
