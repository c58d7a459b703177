"""The study's own recipe for a head: its training data, where its checkpoint lives, and train-or-load.

Training rows are the four difficulty splits of the training set, merged; early stopping watches accuracy on
the Hard validation split (see :mod:`fgclip_utils.heads.training`). A checkpoint is keyed by the training and
validation embeddings' cache keys (so by backbone, weights, precision, scale factor, split files and images),
the training settings and the head, so changing any of them trains anew instead of reusing a stale head.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..cache import cache_folder
from ..data.benchmark_data import load_benchmark
from ..data.coco_captions import coarse_caption_set
from ..evaluation.similarity import SimilarityHead
from ..extraction.clip_models import ClipBundle
from ..extraction.embedding_cache import SplitEmbeddings, embed_captions
from ..profiles import Profile
from .architectures import build_head
from .checkpoints import checkpoint_key, train_or_load
from .recipe_data import recipe_embeddings
from .training import CoarsePairs, TrainResult, merge_embeddings, train_head

RECIPE_VERSION = 1


def training_data(profile: Profile, bundle: ClipBundle, progress: bool = True
                  ) -> tuple[SplitEmbeddings, SplitEmbeddings]:
    """Training rows (the four difficulty splits of the training set, merged) and the Hard validation split."""
    emb = recipe_embeddings(profile, bundle, "study", progress=progress)
    return merge_embeddings(list(emb.splits["train"].values())), emb.splits["val"]["hard"]


def backbone_folder(bundle: ClipBundle) -> str:
    """A folder name for a backbone: model and weights, readable and filesystem-safe."""
    weights = bundle.weights_id.replace(":", "-").replace("/", "-")[:24]
    return f"{bundle.name.replace(':', '-').replace('/', '-')}-{weights}"


def study_head_key(kind: str, cfg, train: SplitEmbeddings, val: SplitEmbeddings,
                   coarse: CoarsePairs | None = None) -> str:
    """The key of a study head: what it trained on (its data's cache keys, and the coarse pairs' when the
    coarse term is on), how, and the recipe's version."""
    parts = dict(recipe="study", version=RECIPE_VERSION, kind=kind, config=asdict(cfg),
                 train=train.meta.get("merged_keys") or train.meta.get("key"), val=val.meta.get("key"))
    if coarse is not None and cfg.coarse_weight > 0:
        parts["coarse"] = coarse.key
    return checkpoint_key(**parts)


def checkpoint_path(profile: Profile, bundle: ClipBundle, kind: str, loss: str, key: str) -> Path:
    """Where the best state dict of study head ``kind`` trained with ``loss`` and settings ``key`` lives."""
    return cache_folder("checkpoints") / profile.name / backbone_folder(bundle) / f"{kind}-{loss}-{key}.pt"


def study_head(profile: Profile, bundle: ClipBundle, kind: str, loss: str, train: SplitEmbeddings,
               val: SplitEmbeddings, *, device: str | torch.device | None = None, coarse: CoarsePairs | None = None,
               progress: bool = True, **overrides) -> tuple[SimilarityHead, TrainResult | None]:
    """Study head ``kind`` trained with ``loss`` on ``train`` / ``val``: from its checkpoint when a usable one with
    the same key exists (verified, loaded with ``weights_only=True``; the result is then None), else trained
    here and saved under that key. ``overrides`` change the profile's training settings (e.g. ``coarse_weight``)."""
    cfg = profile.train_config(loss, **overrides)
    key = study_head_key(kind, cfg, train, val, coarse)
    path = checkpoint_path(profile, bundle, kind, loss, key)
    found, result = train_or_load(path, key, lambda: build_head(kind, bundle.embed_dim, seed=0),
                                  lambda head: train_head(head, train, val, cfg, path, device=device, coarse=coarse,
                                                          progress=progress, key=key))
    if found is not None:
        return (found.to(device) if device else found), None
    return result.head, result


def load_or_train_head(profile: Profile, bundle: ClipBundle, kind: str, loss: str,
                       device: str | torch.device | None = None, progress: bool = True, **overrides
                       ) -> tuple[SimilarityHead, TrainResult | None]:
    """Notebook 02's study head (kind, loss) with the profile's settings (:func:`study_head` on the profile's
    training data)."""
    train, val = training_data(profile, bundle, progress)
    return study_head(profile, bundle, kind, loss, train, val, device=device, progress=progress, **overrides)


def coarse_training_pairs(profile: Profile, bundle: ClipBundle, progress: bool = True) -> CoarsePairs:
    """(image, caption) embedding pairs for the optional coarse-grained training term (never test data)."""
    cs, root = coarse_caption_set(profile, load_benchmark(profile, "train", ["hard"]), "train",
                                  limit=profile.data.coco_train_limit)
    emb = embed_captions(bundle, cs, root, extract=profile.extract, progress=progress)
    return CoarsePairs(image=emb.image[cs.caption_image], text=emb.text, key=emb.key)
