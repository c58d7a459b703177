"""Frozen-CLIP embeddings of the splits' object crops and captions, with an on-disk cache.

:func:`embed_splits` is the one way to embed split crops, for one backbone or several: the crops of all the
splits not cached go through the crop pipeline (:mod:`~.crop_pipeline`) once, so an object shared by several
splits is encoded once and each image decoded once (for every backbone of a shared-decode group); every
distinct caption is encoded once (:func:`~.clip_forward.encode_texts`). Crop embeddings stream into a resumable
file (:mod:`~.crop_streams`) while they are computed; that file is deleted only once every split's entry is
safely written, so a failure after the crops never throws the crops away. :func:`embed_captions` does the same
for a caption set's whole images and captions.

Each split gets its own cache entry, keyed by everything that produced it (model, weights, precision, split file
content, scale factor, which images were available and each one's size and content hash, code version),
written atomically with that key and a checksum, and verified when read (:mod:`~.cache_entries`): any change of
input makes a new entry, and a damaged entry is recomputed instead of used.

Embeddings are stored L2-normalised (what cosine similarity and the study's heads take) with each one's norm
before normalising, so the raw embedding (what the paper's heads take) is ``image * image_norm``.
"""
from __future__ import annotations

import os
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..atomic_io import sha256_file, sha256_json
from ..data.benchmark_data import Benchmark
from ..data.coco_captions import CaptionSet
from ..data.coco_images import declared_size, image_fingerprint, image_path
from ..data.fgovd import Split
from ..profiles import ExtractConfig
from .cache_entries import EntryMismatch, check_unit_rows, read_entry, write_entry
from .clip_forward import encode_texts
from .clip_models import ClipBundle, as_bundles
from .cost_estimate import say_estimate
from .crop_pipeline import PipelineStats, default_workers, plan_crops, shared_decode_groups
from .crop_streams import (
    EMBED_VERSION,
    crop_embeddings,
    embeddings_dir,
    encoder_identity,
    remove_orphans,
    remove_stream,
)

DEFAULT_EXTRACT = ExtractConfig()  # a frozen dataclass: safe to share as a default


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


def split_inputs(split: Split, available: set[int], image_root: str | os.PathLike) -> dict:
    """What of a split's data makes its embeddings (the file's content, which images, each image's content):
    computed once per split, whatever the number of backbones."""
    available = sorted(available)
    return {"split_sha256": sha256_file(split.path), "available_images": available,
            "image_files": image_fingerprint(image_root, [split.images[i] for i in available])}


def cache_key(bundle: ClipBundle, inputs: dict, scale_factor: float, precision: str) -> str:
    """A split entry's key: the encoder, the split's :func:`split_inputs`, the scale factor, the code version."""
    return sha256_json({"version": EMBED_VERSION, **encoder_identity(bundle, precision), **inputs,
                        "scale_factor": float(scale_factor)})


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
        meta={**meta, "split": layout.split.name, "key": layout.key})


def embed_splits(backbones: ClipBundle | Sequence[ClipBundle], bench: Benchmark, splits: Sequence[str] | None = None,
                 *, extract: ExtractConfig = DEFAULT_EXTRACT, cache_dir: str | os.PathLike | None = None,
                 workers: int | None = None, progress: bool = True, stats: PipelineStats | None = None
                 ) -> dict[str, SplitEmbeddings] | list[dict[str, SplitEmbeddings]]:
    """Embeddings of every annotation of the chosen splits of ``bench`` (default: all) whose image is available
    (``bench.available``), as ``{split: SplitEmbeddings}``; for a sequence of backbones, one such dict each.

    Each split's cache entry is reused when it can be; the splits not cached are extracted together, and the
    backbones whose transforms share their geometry and miss the same entries share every image decode and crop
    resize (:func:`~.crop_pipeline.iter_crop_embeddings`). The entries are the same whichever backbones are
    asked together, so a sweep and notebooks 01-03 share one cache. ``extract`` (scale factor, batch size,
    precision) travels whole: pass ``profile.extract`` so that a run's training, validation and test rows share
    one precision and one cache. ``workers`` are the crop pipeline's DataLoader workers (None:
    :func:`~.crop_pipeline.default_workers`; 0: none)."""
    bundles = as_bundles(backbones)
    chosen = [bench.splits[n] for n in (splits or bench.splits)]
    scale, batch, precision = extract.scale_factor, extract.batch_size, extract.precision
    folder = embeddings_dir(cache_dir)
    remove_orphans(folder)
    available = {split.name: set(bench.available[split.name]) for split in chosen}
    inputs = {split.name: split_inputs(split, available[split.name], bench.image_root) for split in chosen}
    results: list[dict[str, SplitEmbeddings]] = [{} for _ in bundles]
    todo: list[list[_Layout]] = [[] for _ in bundles]
    for b, bundle in enumerate(bundles):
        for split in chosen:
            key = cache_key(bundle, inputs[split.name], scale, precision)
            entry = folder / f"{bundle.name}-{split.name}-{key[:20]}.pt"
            cached = load_cached(entry, key)
            if cached is not None:
                cached.meta["from_cache"] = True
                results[b][split.name] = cached
            else:
                todo[b].append(_layout(split, available[split.name], entry, key))

    # backbones that can share a decode and miss the same splits are extracted together
    groups: dict[tuple, list[int]] = {}
    for g in shared_decode_groups(bundles):
        for b in g:
            if todo[b]:
                groups.setdefault((g[0], tuple(lay.split.name for lay in todo[b])), []).append(b)

    def crop_of(layout: _Layout, ann) -> tuple:
        return image_path(bench.image_root, layout.split.images[ann.image_id]), ann.bbox

    for members in groups.values():
        layouts = todo[members[0]]
        sizes = {str(image_path(bench.image_root, rec)): declared_size(rec)
                 for lay in layouts for rec in lay.split.images.values()}
        plan = plan_crops([crop_of(lay, a) for lay in layouts for a in lay.annotations], scale, sizes)
        names = "+".join(lay.split.name for lay in layouts)
        who = f" ({len(members)} backbones)" if len(members) > 1 else ""
        captions = sorted({c for lay in layouts for c in lay.captions})
        if progress:
            say_estimate([bundles[b] for b in members], len(plan.images), len(plan), len(captions),
                         default_workers(bundles[members[0]].device) if workers is None else workers, precision,
                         f"embedding {names} with {', '.join(bundles[b].label for b in members)}")
        images = crop_embeddings([bundles[b] for b in members], plan, cache_dir=cache_dir, batch_size=batch,
                                 workers=workers, precision=precision, progress=progress,
                                 desc=f"crops {names}{who}", stats=stats)
        caption_row = {c: i for i, c in enumerate(captions)}
        for b, (image, stream) in zip(members, images, strict=True):
            bundle = bundles[b]
            start = time.perf_counter()
            text = encode_texts(bundle, captions, batch_size=batch, progress=progress, precision=precision,
                                with_norms=True)
            if stats is not None:
                stats.extra.update(captions=len(captions),
                                   captions_s=stats.extra.get("captions_s", 0.0) + time.perf_counter() - start)
            meta = {**encoder_identity(bundle, precision), "scale_factor": float(scale)}
            for lay in todo[b]:
                rows = torch.tensor([plan.row(*crop_of(lay, a)) for a in lay.annotations], dtype=torch.long)
                own_image = image if torch.equal(rows, torch.arange(len(image))) else image[rows]
                own_text = text if lay.captions == captions else text[[caption_row[c] for c in lay.captions]]
                result = _assemble(lay, own_image, own_text, meta)
                write_entry(lay.entry, result.to_dict(), lay.key)
                result.meta["from_cache"] = False
                results[b][lay.split.name] = result
            remove_stream(stream)  # every entry of this backbone is written: its crops live on there
    out = [{split.name: res[split.name] for split in chosen} for res in results]
    return out[0] if isinstance(backbones, ClipBundle) else out


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


def _caption_set_key(bundle: ClipBundle, inputs: dict, precision: str) -> str:
    return sha256_json({"version": EMBED_VERSION, **encoder_identity(bundle, precision), **inputs})


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


def embed_captions(backbones: ClipBundle | Sequence[ClipBundle], cs: CaptionSet, image_root: str | os.PathLike,
                   *, extract: ExtractConfig = DEFAULT_EXTRACT, cache_dir: str | os.PathLike | None = None,
                   workers: int | None = None, progress: bool = True) -> CaptionEmbeddings | list[CaptionEmbeddings]:
    """Whole-image and caption embeddings of a caption set (a list of them for a sequence of backbones), cached
    by model, weights, precision, the caption set's content and its image files. The images go through the crop
    pipeline (one whole-image "crop" each), decoded once per group of backbones whose transforms share their
    geometry; ``extract``'s scale factor does not apply to whole images."""
    bundles = as_bundles(backbones)
    batch, precision = extract.batch_size, extract.precision
    folder = embeddings_dir(cache_dir)
    remove_orphans(folder)
    inputs = {"images": cs.images, "captions": cs.captions, "image_files": image_fingerprint(image_root, cs.images)}
    keys = [_caption_set_key(b, inputs, precision) for b in bundles]
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
        if progress:
            say_estimate([bundles[b] for b in members], len(plan.images), len(plan), len(cs.captions),
                         default_workers(bundles[members[0]].device) if workers is None else workers, precision,
                         f"embedding {cs.name} with {', '.join(bundles[b].label for b in members)}")
        images = crop_embeddings([bundles[b] for b in members], plan, cache_dir=cache_dir, batch_size=batch,
                                 workers=workers, precision=precision, progress=progress, desc=f"{cs.name}{who}")
        for b, (image, stream) in zip(members, images, strict=True):
            img = image[rows]
            txt = encode_texts(bundles[b], cs.captions, batch_size=batch, progress=progress, precision=precision,
                               with_norms=True)
            result = CaptionEmbeddings(img[:, :-1].contiguous(), txt[:, :-1].contiguous(), cs,
                                       img[:, -1].contiguous(), txt[:, -1].contiguous(), keys[b])
            write_entry(entries[b], {"image": result.image, "text": result.text, "image_norm": result.image_norm,
                                     "text_norm": result.text_norm}, keys[b])
            remove_stream(stream)
            results[b] = result
    return results[0] if isinstance(backbones, ClipBundle) else results
