"""Frozen-CLIP embeddings of the splits' object crops and captions, with an on-disk cache.

:func:`embed_splits` extracts several splits in one pass: the crops of all of them go through the crop
pipeline (:mod:`fgclip_utils.extraction.crop_pipeline`) once, so an object shared by several splits is encoded once and
each image decoded once; every distinct caption of all of them is encoded once
(:func:`fgclip_utils.extraction.clip_forward.encode_texts`). Crop embeddings stream into a resumable file in the cache
(:mod:`fgclip_utils.extraction.row_file`) while they are computed. Each split then gets its own cache entry, keyed by
everything that produced it (model, weights, precision, split file content, scale factor, which images were
available, code version) and written atomically: a second run with the same inputs loads it, and any change
of input makes a new entry instead of reusing a stale one.
"""
from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..atomic_io import atomic_path, sha256_file, sha256_json
from ..cache import cache_folder
from ..data.benchmark_data import Benchmark
from ..data.coco_captions import CaptionSet
from ..data.coco_images import image_path
from ..data.fgovd import Split
from .clip_forward import encode_texts, resolve_precision
from .clip_models import ClipBundle
from .crop_pipeline import CropPlan, PipelineStats, iter_crop_embeddings, plan_crops
from .row_file import RowFile, RowFileBusy

EMBED_VERSION = 2
@dataclass
class SplitEmbeddings:
    """Embeddings of one split, one row per annotation whose image is available.

    ``candidates()`` gives, per row, the caption indices ``[positive, negative_1, ...]`` padded with -1.
    """

    image: torch.Tensor  # (N, d) L2-normalised crop embeddings
    text: torch.Tensor  # (C, d) L2-normalised caption embeddings
    captions: list[str]  # (C,) distinct captions
    positive: torch.Tensor  # (N,) index into captions
    negatives: torch.Tensor  # (N, K) indices into captions, -1 = no negative
    annotation_ids: torch.Tensor  # (N,)
    n_missing_images: int = 0  # annotations dropped because their image is unavailable
    meta: dict = field(default_factory=dict)

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
                "n_missing_images": self.n_missing_images, "meta": dict(self.meta)}


def encoder_identity(bundle: ClipBundle, precision: str = "auto") -> dict:
    """What, of the encoder, makes its embeddings what they are: part of every embedding cache key and meta."""
    return {"model": bundle.name, "weights": bundle.weights_id,
            "precision": resolve_precision(bundle.device, precision)}


def cache_key(bundle: ClipBundle, split: Split, scale_factor: float, available: Iterable[int],
              precision: str = "auto") -> str:
    return sha256_json({
        "version": EMBED_VERSION, **encoder_identity(bundle, precision),
        "split_sha256": sha256_file(split.path), "scale_factor": float(scale_factor),
        "available_images": sorted(available),
    })


def embeddings_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the embedding cache entries: ``cache_dir``, else ``<cache root>/embeddings``."""
    return Path(cache_dir) if cache_dir else cache_folder("embeddings")


def read_entry(path: Path) -> dict | None:
    """A cache entry's tensors (``weights_only`` load), or None if it is absent or unreadable; an unreadable
    entry is recomputed by the caller, never trusted, and left in place until then."""
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return data if isinstance(data, dict) else None


def write_entry(path: Path, data: dict) -> None:
    """Save a cache entry atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def load_cached(path: Path) -> SplitEmbeddings | None:
    """A split's cached embeddings, or None if the entry is absent, unreadable or of another layout."""
    data = read_entry(path)
    try:
        return SplitEmbeddings(**data) if data is not None else None
    except TypeError:
        return None


def crop_stream_path(bundle: ClipBundle, plan: CropPlan, cache_dir: str | os.PathLike | None = None,
                     precision: str = "auto") -> Path:
    """The file :func:`crop_embeddings` streams ``plan``'s embeddings into, named by all that produces them."""
    key = sha256_json({"version": EMBED_VERSION, **encoder_identity(bundle, precision),
                       "scale_factor": plan.scale_factor, "crops": plan.keys()})
    return embeddings_dir(cache_dir) / f"crops-{key[:20]}.npy"


def crop_embeddings(bundle: ClipBundle, plan: CropPlan, *, cache_dir: str | os.PathLike | None = None,
                    batch_size: int = 256, workers: int | None = None, precision: str = "auto", progress: bool = True,
                    desc: str = "crops", stats: PipelineStats | None = None) -> torch.Tensor:
    """The (rows, d) embeddings of a :class:`~fgclip_utils.extraction.crop_pipeline.CropPlan`, streamed chunk by chunk
    into ``crops-<key>.npy`` in the cache while they are computed. An interrupted run resumes after the last
    chunk written; the file is removed once the matrix is returned (the callers cache their own results). If
    another process is writing the same file, this one streams into a file of its own."""
    path = crop_stream_path(bundle, plan, cache_dir, precision)
    try:
        store = RowFile(path, len(plan), bundle.embed_dim)
    except RowFileBusy:  # the same extraction is running in another process: work apart, no resuming
        store = RowFile(path.with_name(f"{path.stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npy"), len(plan),
                        bundle.embed_dim)
    with store:
        for first, emb in iter_crop_embeddings(bundle, plan, batch_size=batch_size, workers=workers,
                                               precision=precision, skip_rows=store.done, progress=progress,
                                               desc=desc, stats=stats):
            store.write(first, emb)
        matrix = store.read()
    store.discard()
    return matrix


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
        image=image, text=text, captions=list(layout.captions),
        positive=torch.tensor([index[a.positive] for a in ordered], dtype=torch.long),
        negatives=negatives, annotation_ids=torch.tensor([a.id for a in ordered], dtype=torch.long),
        n_missing_images=len(layout.split.annotations) - len(ordered),
        meta={**meta, "split": layout.split.name, "key": layout.key})


def embed_splits(bundle: ClipBundle, splits: Sequence[Split] | Mapping[str, Split], image_root: str | os.PathLike, *,
                 scale_factor: float = 1.0, available: Mapping[str, Iterable[int]] | None = None,
                 cache_dir: str | os.PathLike | None = None, batch_size: int = 256, workers: int | None = None,
                 precision: str = "auto", progress: bool = True, stats: PipelineStats | None = None
                 ) -> dict[str, SplitEmbeddings]:
    """Embed every annotation of each split whose image is available, reusing each split's cache entry when
    it can; the splits not cached are extracted together (shared crops and captions encoded once).

    ``available`` maps a split name to the image ids on disk (e.g. ``fetch_images(...).available``); by
    default, every image of the split that exists under ``image_root``. ``workers`` are the crop pipeline's
    DataLoader workers (None: one per core beyond the first, at most 8; 0: none). ``precision`` is
    ``"auto"`` (bf16 autocast on GPU, fp32 on CPU), ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    """
    splits = list(splits.values()) if isinstance(splits, Mapping) else list(splits)
    results: dict[str, SplitEmbeddings] = {}
    todo: list[_Layout] = []
    for split in splits:
        if available is not None and split.name in available:
            avail = set(available[split.name])
        else:
            avail = {i for i, rec in split.images.items() if image_path(image_root, rec).exists()}
        key = cache_key(bundle, split, scale_factor, avail, precision)
        entry = embeddings_dir(cache_dir) / f"{bundle.name}-{split.name}-{key[:20]}.pt"
        cached = load_cached(entry)
        if cached is not None:
            cached.meta["from_cache"] = True
            results[split.name] = cached
        else:
            todo.append(_layout(split, avail, entry, key))

    if todo:
        def crop_of(layout: _Layout, ann) -> tuple:
            return image_path(image_root, layout.split.images[ann.image_id]), ann.bbox

        plan = plan_crops([crop_of(lay, a) for lay in todo for a in lay.annotations], scale_factor)
        names = "+".join(lay.split.name for lay in todo)
        image = crop_embeddings(bundle, plan, cache_dir=cache_dir, batch_size=batch_size, workers=workers,
                                precision=precision, progress=progress, desc=f"crops {names}", stats=stats)
        captions = sorted({c for lay in todo for c in lay.captions})
        start = time.perf_counter()
        text = encode_texts(bundle, captions, batch_size=batch_size, progress=progress, precision=precision)
        if stats is not None:
            stats.extra.update(captions=len(captions), captions_s=time.perf_counter() - start)
        caption_row = {c: i for i, c in enumerate(captions)}
        meta = {**encoder_identity(bundle, precision), "scale_factor": float(scale_factor)}
        for lay in todo:
            rows = torch.tensor([plan.row(*crop_of(lay, a)) for a in lay.annotations], dtype=torch.long)
            own_image = image if torch.equal(rows, torch.arange(len(image))) else image[rows]
            own_text = text if lay.captions == captions else text[[caption_row[c] for c in lay.captions]]
            result = _assemble(lay, own_image, own_text, meta)
            write_entry(lay.entry, result.to_dict())
            result.meta["from_cache"] = False
            results[lay.split.name] = result
    return {split.name: results[split.name] for split in splits}


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


@dataclass
class CaptionEmbeddings:
    """Whole-image and caption embeddings of a :class:`~fgclip_utils.data.coco_captions.CaptionSet`."""

    image: torch.Tensor
    text: torch.Tensor
    caption_set: CaptionSet


def embed_caption_set(bundle: ClipBundle, cs: CaptionSet, image_root: str | os.PathLike, batch_size: int = 256,
                      cache_dir: str | os.PathLike | None = None, progress: bool = True, workers: int | None = None,
                      precision: str = "auto") -> CaptionEmbeddings:
    """Whole-image and caption embeddings, cached by model, weights, precision and the caption set's content;
    the images go through the crop pipeline (one whole-image "crop" each)."""
    key = sha256_json({"v": 2, **encoder_identity(bundle, precision), "images": cs.images, "captions": cs.captions})
    entry = embeddings_dir(cache_dir) / f"{bundle.name}-{cs.name}-{key[:20]}.pt"
    cached = read_entry(entry)
    if cached is not None and {"image", "text"} <= cached.keys():
        return CaptionEmbeddings(cached["image"], cached["text"], cs)

    paths = [image_path(image_root, rec) for rec in cs.images]
    plan = plan_crops([(p, None) for p in paths])
    image = crop_embeddings(bundle, plan, cache_dir=cache_dir, batch_size=batch_size, workers=workers,
                            precision=precision, progress=progress, desc=cs.name)
    img = image[torch.tensor([plan.row(p, None) for p in paths], dtype=torch.long)]
    txt = encode_texts(bundle, cs.captions, batch_size=batch_size, progress=progress, precision=precision)
    write_entry(entry, {"image": img, "text": txt})
    return CaptionEmbeddings(img, txt, cs)
