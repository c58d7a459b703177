"""Which embeddings a head recipe trains and validates on: the one place that decides it.

A study head (:mod:`~.study_recipe`) trains on the four difficulty splits of FG-OVD's training set and
validates on its Hard validation split; a paper head (``paper-*``, :mod:`~.paper_recipe`) trains stage 2 on the
Hard training split and validates on the Hard validation split, and stage 1 (the warm-up) on caption pairs
(COCO Karpathy train + restval, validated on Karpathy val; the synthetic scenes in ``smoke``). Only those split
files and their images are downloaded. Given several backbones, each image is decoded once per shared-decode
group (:func:`~fgclip_utils.extraction.embedding_cache.embed_splits`), so a sweep fills the cache the recipes read.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..data.benchmark_data import load_benchmark
from ..data.coco_captions import coarse_caption_set
from ..data.fgovd import DIFFICULTY_SPLITS
from ..extraction.clip_models import ClipBundle, as_bundles
from ..extraction.embedding_cache import CaptionEmbeddings, SplitEmbeddings, embed_captions, embed_splits
from ..profiles import Profile

SUBSETS = ("train", "val")


def recipe_splits(kind: str, subset: str) -> list[str]:
    """The FG-OVD splits of ``subset`` (``train`` or ``val``) that head ``kind``'s recipe reads."""
    return list(DIFFICULTY_SPLITS) if subset == "train" and not kind.startswith("paper-") else ["hard"]


@dataclass
class RecipeEmbeddings:
    """One backbone's embeddings for a recipe: ``splits[subset][split]`` and, with the warm-up,
    ``captions[subset]`` (stage 1's caption pairs)."""

    splits: dict[str, dict[str, SplitEmbeddings]] = field(default_factory=dict)
    captions: dict[str, CaptionEmbeddings] = field(default_factory=dict)


def recipe_embeddings(profile: Profile, backbones: ClipBundle | Sequence[ClipBundle], kind: str, *,
                      with_warmup: bool = False, progress: bool = True) -> RecipeEmbeddings | list[RecipeEmbeddings]:
    """What training head ``kind`` on each of ``backbones`` reads, with ``profile``'s extraction settings;
    ``with_warmup`` adds the paper recipe's stage-1 caption sets. One result, or a list for several backbones."""
    bundles = as_bundles(backbones)
    out = [RecipeEmbeddings() for _ in bundles]
    for subset in SUBSETS:
        splits = recipe_splits(kind, subset)
        bench = load_benchmark(profile, subset, splits)
        for res, embs in zip(out, embed_splits(bundles, bench, splits, extract=profile.extract, progress=progress),
                             strict=True):
            res.splits[subset] = embs
        if with_warmup:
            limit = profile.data.warmup_images if subset == "train" else profile.data.warmup_val_images
            cs, root = coarse_caption_set(profile, bench, subset, limit=limit)
            for res, emb in zip(out, embed_captions(bundles, cs, root, extract=profile.extract, progress=progress),
                                strict=True):
                res.captions[subset] = emb
    return out[0] if isinstance(backbones, ClipBundle) else out
