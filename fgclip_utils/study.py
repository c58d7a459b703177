"""Steps the notebooks share: embedding a whole benchmark, the coarse-grained caption set of a profile,
and one results row (fine-grained accuracy per split + coarse-grained recalls) per method."""
from __future__ import annotations

import time

import torch

from .benchmark import Benchmark
from .clip_models import ClipBundle
from .embeddings import SplitEmbeddings, embed_split
from .evaluation import evaluate_split
from .fgovd import SPLITS
from .heads import SimilarityHead
from .images import default_image_root, fetch_records
from .profiles import Profile
from .retrieval import (CaptionEmbeddings, CaptionSet, download_karpathy, embed_caption_set, load_karpathy,
                        retrieval_recalls, synthetic_caption_set)


def embed_benchmark(bundle: ClipBundle, bench: Benchmark, splits=None, scale_factor: float = 1.0,
                    batch_size: int = 128, progress: bool = True) -> dict[str, SplitEmbeddings]:
    """Embeddings of the chosen splits (default: all), each from the cache when it can be."""
    return {name: embed_split(bundle, bench.splits[name], bench.image_root, scale_factor=scale_factor,
                              available=bench.available[name], batch_size=batch_size, progress=progress)
            for name in (splits or bench.splits)}


def coarse_caption_set(profile: Profile, test_bench: Benchmark) -> tuple[CaptionSet, object]:
    """The caption set for coarse-grained retention and its image root (COCO Karpathy test in ``full``)."""
    if profile.synthetic:
        return synthetic_caption_set(test_bench), test_bench.image_root
    cs = load_karpathy(download_karpathy(), "test", limit=profile.coco_limit)
    root = default_image_root()
    report = fetch_records(dict(enumerate(cs.images)), root, workers=profile.image_workers, desc=cs.name)
    if report.missing:
        raise RuntimeError(f"{len(report.missing)} COCO caption images could not be fetched, e.g. "
                           f"{next(iter(report.missing.values()))}")
    return cs, root


def method_row(method: str, test: dict[str, SplitEmbeddings], coarse: CaptionEmbeddings,
               head: SimilarityHead | None = None, device: str | torch.device = "cpu", **info) -> dict:
    """``method``, per-split accuracy (``acc_<split>``), coarse recalls, and any ``info`` (loss, params, ...)."""
    score = None
    if head is not None:
        head = head.to(device).eval()
        score = head.score
    row = {"method": method, **info}
    with torch.no_grad():
        for name, emb in test.items():
            row[f"acc_{name}"] = evaluate_split(emb, score, split=name, device=device).summary["accuracy"]
        row.update(retrieval_recalls(coarse, head, device=device))
    return row


def acc_columns(table) -> list[str]:
    """The per-split accuracy columns of a results table, in the papers' split order."""
    return [f"acc_{s}" for s in SPLITS if f"acc_{s}" in table.columns]


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
