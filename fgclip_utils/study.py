"""Steps the notebooks share: embedding a whole benchmark, the coarse-grained caption set of a profile,
one results row (fine-grained accuracy per split + coarse-grained recalls) per method, the training data
and settings of a profile, and loading (or training) a head."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .benchmark import Benchmark, load_benchmark
from .clip_models import ClipBundle
from .embeddings import SplitEmbeddings, embed_splits
from .evaluation import evaluate_split
from .fgovd import DIFFICULTY_SPLITS
from .heads import SimilarityHead, build_head
from .io import cache_root
from .images import default_image_root, fetch_records
from .profiles import Profile
from .retrieval import (CaptionEmbeddings, CaptionSet, download_karpathy, embed_caption_set, load_karpathy,
                        retrieval_recalls, synthetic_caption_set)
from .training import CoarsePairs, TrainConfig, TrainResult, merge_embeddings, train_head


def embed_benchmark(bundle: ClipBundle, bench: Benchmark, splits=None, scale_factor: float = 1.0,
                    batch_size: int = 256, progress: bool = True, **kwargs) -> dict[str, SplitEmbeddings]:
    """Embeddings of the chosen splits (default: all), each from the cache when it can be; the others are
    extracted together, so their shared objects and captions are encoded once (``kwargs``: ``workers``,
    ``precision``, see :func:`~fgclip_utils.embeddings.embed_splits`)."""
    names = list(splits or bench.splits)
    return embed_splits(bundle, [bench.splits[n] for n in names], bench.image_root, scale_factor=scale_factor,
                        available={n: bench.available[n] for n in names}, batch_size=batch_size,
                        progress=progress, **kwargs)


def coarse_caption_set(profile: Profile, bench: Benchmark, subset: str = "test") -> tuple[CaptionSet, Path]:
    """Captioned images for coarse-grained retention and their image root: COCO Karpathy ``subset`` in
    ``full`` (5k test images; ``train`` for the optional training term), the synthetic scenes of ``bench``
    in ``smoke``."""
    if profile.synthetic:
        return synthetic_caption_set(bench), bench.image_root
    limit = profile.coco_limit if subset == "test" else profile.coco_train_limit
    cs = load_karpathy(download_karpathy(), subset, limit=limit)
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


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def training_data(profile: Profile, bundle: ClipBundle, progress: bool = True
                  ) -> tuple[SplitEmbeddings, SplitEmbeddings]:
    """Training rows (the four difficulty splits of the training set, merged) and the Hard validation split."""
    train_bench, val_bench = load_benchmark(profile, "train"), load_benchmark(profile, "val")
    parts = embed_benchmark(bundle, train_bench, DIFFICULTY_SPLITS, profile.scale_factor, profile.batch_size, progress)
    val = embed_benchmark(bundle, val_bench, ["hard"], profile.scale_factor, profile.batch_size, progress)["hard"]
    return merge_embeddings(list(parts.values())), val


def train_config(profile: Profile, loss: str, **overrides) -> TrainConfig:
    """The profile's training settings for ``loss`` (any field can be overridden)."""
    return TrainConfig(**{"loss": loss, "epochs": profile.train_epochs, "batch_size": profile.train_batch_size,
                          "lr": profile.train_lr, "patience": profile.train_patience, **overrides})


def checkpoint_path(profile: Profile, bundle: ClipBundle, kind: str, loss: str) -> Path:
    """Where notebook 02 saves the best state dict of head ``kind`` trained with ``loss``."""
    weights = bundle.weights_id.replace(":", "-")[:24]
    return cache_root() / "checkpoints" / profile.name / f"{bundle.name}-{weights}" / f"{kind}-{loss}.pt"


def load_or_train_head(profile: Profile, bundle: ClipBundle, kind: str, loss: str,
                       device: str | torch.device = "cpu", progress: bool = True
                       ) -> tuple[SimilarityHead, TrainResult | None]:
    """Notebook 02's checkpoint of (kind, loss) if it exists (loaded with ``weights_only=True``), else a
    head trained on the spot with the profile's settings (and saved where notebook 02 would put it)."""
    path = checkpoint_path(profile, bundle, kind, loss)
    head = build_head(kind, bundle.embed_dim, seed=0)
    if path.exists():
        head.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return head.to(device).eval(), None
    train, val = training_data(profile, bundle, progress)
    result = train_head(head, train, val, train_config(profile, loss), path, device=device, progress=progress)
    return result.head, result


def coarse_training_pairs(profile: Profile, bundle: ClipBundle, progress: bool = True) -> CoarsePairs:
    """(image, caption) embedding pairs for the optional coarse-grained training term (never test data)."""
    cs, root = coarse_caption_set(profile, load_benchmark(profile, "train"), "train")
    emb = embed_caption_set(bundle, cs, root, profile.batch_size, progress=progress)
    return CoarsePairs(image=emb.image[cs.caption_image], text=emb.text)
