"""Frozen-CLIP embeddings of a split's object crops and captions, with an on-disk cache.

Each image is decoded once for all its boxes; each distinct caption is encoded once. The cache entry is
keyed by everything that produced it (model, weights, split file content, scale factor, which images were
available, code version) and written atomically, so a second run with the same inputs loads it and any
change of input makes a new entry instead of reusing a stale one.
"""
from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import torch
from PIL import Image
from tqdm.auto import tqdm

from .clip_models import ClipBundle
from .fgovd import Split
from .images import crop, image_path
from .io import atomic_path, cache_root, sha256_file, sha256_json

EMBED_VERSION = 1


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


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return contextlib.nullcontext()


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.no_grad()  # not inference_mode: these tensors are later used as training inputs
def encode_texts(bundle: ClipBundle, texts: list[str], batch_size: int = 256, progress: bool = True
                 ) -> torch.Tensor:
    """L2-normalised float32 CPU embeddings of ``texts`` (in order)."""
    out = []
    for batch in tqdm(list(_batches(texts, batch_size)), desc="captions", disable=not progress, unit="batch"):
        tokens = bundle.tokenizer(batch).to(bundle.device)
        with _autocast(bundle.device):
            emb = bundle.model.encode_text(tokens)
        out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.empty(0, bundle.embed_dim)


@torch.no_grad()  # not inference_mode: these tensors are later used as training inputs
def encode_images(bundle: ClipBundle, images: Iterable[Image.Image], batch_size: int = 128, total: int | None = None,
                  progress: bool = True, desc: str = "crops") -> torch.Tensor:
    """L2-normalised float32 CPU embeddings of PIL images (in order), preprocessed with the model's transform."""
    out, pending = [], []

    def flush():
        pixels = torch.stack(pending).to(bundle.device, non_blocking=True)
        with _autocast(bundle.device):
            emb = bundle.model.encode_image(pixels)
        out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
        pending.clear()

    for im in tqdm(images, total=total, desc=desc, disable=not progress, unit="img"):
        pending.append(bundle.preprocess(im))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    return torch.cat(out) if out else torch.empty(0, bundle.embed_dim)


def iter_crops(split: Split, image_root: str | os.PathLike, annotation_order: list, scale_factor: float
               ) -> Iterator[Image.Image]:
    """Crops of ``annotation_order`` (Annotation objects, grouped by image), decoding each image once."""
    current_id, current = None, None
    for ann in annotation_order:
        if ann.image_id != current_id:
            if current is not None:
                current.close()
            current = Image.open(image_path(image_root, split.images[ann.image_id]))
            current.load()
            current_id = ann.image_id
        yield crop(current, ann.bbox, scale_factor)
    if current is not None:
        current.close()


def cache_key(bundle: ClipBundle, split: Split, scale_factor: float, available: Iterable[int]) -> str:
    return sha256_json({
        "version": EMBED_VERSION, "model": bundle.name, "weights": bundle.weights_id,
        "split_sha256": sha256_file(split.path), "scale_factor": float(scale_factor),
        "available_images": sorted(available),
    })


def embeddings_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the embedding cache entries: ``cache_dir``, else ``<cache root>/embeddings``."""
    return Path(cache_dir) if cache_dir else cache_root() / "embeddings"


def read_entry(path: Path) -> dict | None:
    """A cache entry's tensors (``weights_only`` load), or None if it is absent or unreadable; an unreadable
    entry is recomputed by the caller, never trusted, and left in place until then."""
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a corrupt entry is recomputed, never trusted
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


def embed_split(bundle: ClipBundle, split: Split, image_root: str | os.PathLike, *, scale_factor: float = 1.0,
                available: Iterable[int] | None = None, cache_dir: str | os.PathLike | None = None,
                batch_size: int = 128, progress: bool = True) -> SplitEmbeddings:
    """Embed every annotation of ``split`` whose image is available, reusing the cache when it can.

    ``available`` lists the image ids on disk (e.g. ``fetch_images(...).available``); by default, every
    image of the split that exists under ``image_root``.
    """
    if available is None:
        available = [i for i, rec in split.images.items() if image_path(image_root, rec).exists()]
    available = set(available)
    key = cache_key(bundle, split, scale_factor, available)
    entry = embeddings_dir(cache_dir) / f"{bundle.name}-{split.name}-{key[:20]}.pt"
    cached = load_cached(entry)
    if cached is not None:
        cached.meta["from_cache"] = True
        return cached

    kept = [a for a in split.annotations if a.image_id in available]
    by_image: dict[int, list] = defaultdict(list)
    for ann in kept:
        by_image[ann.image_id].append(ann)
    ordered = [a for anns in by_image.values() for a in anns]

    captions = sorted({c for a in ordered for c in (a.positive, *a.negatives)})
    index = {c: i for i, c in enumerate(captions)}
    k = max((len(a.negatives) for a in ordered), default=0)
    negatives = torch.full((len(ordered), k), -1, dtype=torch.long)
    for row, ann in enumerate(ordered):
        negatives[row, :len(ann.negatives)] = torch.tensor([index[c] for c in ann.negatives], dtype=torch.long)

    image_emb = encode_images(bundle, iter_crops(split, image_root, ordered, scale_factor), batch_size,
                              total=len(ordered), progress=progress, desc=f"crops {split.name}")
    text_emb = encode_texts(bundle, captions, progress=progress)
    result = SplitEmbeddings(
        image=image_emb, text=text_emb, captions=captions,
        positive=torch.tensor([index[a.positive] for a in ordered], dtype=torch.long),
        negatives=negatives, annotation_ids=torch.tensor([a.id for a in ordered], dtype=torch.long),
        n_missing_images=len(split.annotations) - len(ordered),
        meta={"model": bundle.name, "weights": bundle.weights_id, "split": split.name,
              "scale_factor": float(scale_factor), "key": key},
    )
    write_entry(entry, result.to_dict())
    result.meta["from_cache"] = False
    return result
