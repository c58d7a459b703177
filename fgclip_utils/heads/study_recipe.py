"""The study's own recipe for a head: its training data, where its checkpoint lives, and train-or-load.

Training rows are the four difficulty splits of the training set, merged; early stopping watches accuracy on
the Hard validation split (see :mod:`fgclip_utils.heads.training`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..cache import cache_folder
from ..data.benchmark_data import load_benchmark
from ..data.coco_captions import coarse_caption_set
from ..data.fgovd import DIFFICULTY_SPLITS
from ..extraction.clip_models import ClipBundle
from ..extraction.embedding_cache import SplitEmbeddings, embed_benchmark, embed_caption_set
from ..profiles import Profile
from .architectures import SimilarityHead, build_head
from .training import CoarsePairs, TrainResult, merge_embeddings, train_head


def training_data(profile: Profile, bundle: ClipBundle, progress: bool = True
                  ) -> tuple[SplitEmbeddings, SplitEmbeddings]:
    """Training rows (the four difficulty splits of the training set, merged) and the Hard validation split."""
    train_bench, val_bench = load_benchmark(profile, "train"), load_benchmark(profile, "val")
    ex = profile.extract
    parts = embed_benchmark(bundle, train_bench, DIFFICULTY_SPLITS, ex.scale_factor, ex.batch_size, progress)
    val = embed_benchmark(bundle, val_bench, ["hard"], ex.scale_factor, ex.batch_size, progress)["hard"]
    return merge_embeddings(list(parts.values())), val


def checkpoint_path(profile: Profile, bundle: ClipBundle, kind: str, loss: str) -> Path:
    """Where notebook 02 saves the best state dict of head ``kind`` trained with ``loss``."""
    weights = bundle.weights_id.replace(":", "-")[:24]
    return cache_folder("checkpoints") / profile.name / f"{bundle.name}-{weights}" / f"{kind}-{loss}.pt"


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
    result = train_head(head, train, val, profile.train_config(loss), path, device=device, progress=progress)
    return result.head, result


def coarse_training_pairs(profile: Profile, bundle: ClipBundle, progress: bool = True) -> CoarsePairs:
    """(image, caption) embedding pairs for the optional coarse-grained training term (never test data)."""
    cs, root = coarse_caption_set(profile, load_benchmark(profile, "train"), "train")
    emb = embed_caption_set(bundle, cs, root, profile.extract.batch_size, progress=progress)
    return CoarsePairs(image=emb.image[cs.caption_image], text=emb.text)
