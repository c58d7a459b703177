"""Run profiles and the settings they hold: ``smoke`` (synthetic benchmark, tiny random-init CLIP, CPU, minutes)
and ``full`` (FG-OVD + COCO, pretrained backbone, GPU).

A notebook's parameters cell sets ``profile``; left as None it comes from ``$FGCLIP_PROFILE``, then ``smoke``.
Every figure and table made in ``smoke`` carries :attr:`Profile.disclaimer`. A profile groups its settings by
what they are for: :class:`DataConfig` (what is evaluated and trained on), :class:`ExtractConfig` (how CLIP
embeddings are extracted), :class:`PaperRecipe` (the paper's two-stage head training) and :class:`TrainConfig`
(the study's own head training).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .data.fgovd import PAPER_N, SYNTHETIC_N

PROFILE_ENV = "FGCLIP_PROFILE"
LOSSES = ("triplet", "infonce")


SCHEMES = ("hf-hub:", "local-dir:")  # backbone names that are a place, not an open_clip config


def backbone_label(model: str, pretrained: str | None, *, full_path: bool = False) -> str:
    """How a backbone is named in every table, figure and message: ``model (tag)``, ``random-init`` without
    weights, a weights file by its file name (``full_path``: by its path, as error messages do); an
    ``hf-hub:``/``local-dir:`` name as it is."""
    if model.startswith(SCHEMES):
        return model
    tag = pretrained if pretrained and (full_path or not os.path.isfile(pretrained)) else \
        (Path(pretrained).name if pretrained else "random-init")
    return f"{model} ({tag})"


@dataclass(frozen=True)
class DataConfig:
    """What a profile evaluates and trains on."""

    synthetic: bool  # True: the offline synthetic benchmark; False: FG-OVD + COCO
    n_objects: int = 0  # synthetic benchmark size (test and validation splits)
    n_train_objects: int = 0  # synthetic training split size
    image_workers: int = 16  # parallel image downloads
    coco_limit: int | None = None  # images of the coarse-grained test caption set (None = all 5k)
    coco_train_limit: int = 10000  # Karpathy train images for the study's optional coarse-grained training term
    warmup_images: int | None = None  # Karpathy train + restval images of the paper's warm-up (None = all 113,287)
    warmup_val_images: int | None = None  # Karpathy val images validating it (None = all 5k)
    # negatives each split's positive is ranked against (the paper's fixed N); None: the paper's PAPER_N. The
    # synthetic benchmark has fewer per attribute split (e.g. 1 for transparency: two values exist)
    fixed_n: dict[str, int] | None = None


@dataclass(frozen=True)
class ExtractConfig:
    """How crops and captions are embedded."""

    scale_factor: float = 1.0  # crop enlargement around the box centre
    batch_size: int = 128
    precision: str = "auto"  # see fgclip_utils.extraction.clip_forward.PRECISIONS


@dataclass(frozen=True)
class TrainConfig:
    """The study's head training (identity-initialised heads, all difficulty splits, early stopping)."""

    loss: str = "triplet"  # "triplet" or "infonce"
    margin: float = 0.05  # triplet
    violation: str = "sum"  # triplet: "sum" over negatives or "max" (hardest)
    temperature: float = 0.01  # infonce and the coarse-grained term
    coarse_weight: float = 0.0  # weight of the CLIP loss on coarse (COCO) pairs; 0 = off
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 30
    batch_size: int = 256
    patience: int = 5  # epochs without validation improvement before stopping
    seed: int = 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be 'triplet' or 'infonce', got {self.loss!r}")


@dataclass(frozen=True)
class StageConfig:
    """One stage of the paper's recipe (FG-CLIP ``configs/train/*.yaml``)."""

    stage: str  # "warmup" (COCO) or "fg-ovd" (FG-OVD Hard)
    lr: float
    margin: float
    epochs: int = 10
    batch_size: int = 256
    seed: int = 123


@dataclass(frozen=True)
class PaperRecipe:
    """The paper's two-stage training of its heads (STUDY.md 7.2)."""

    warmup: StageConfig = StageConfig("warmup", lr=5e-5, margin=0.2)
    finetune: StageConfig = StageConfig("fg-ovd", lr=1e-5, margin=0.05)
    cosine: bool = True  # the configs' intent (their loader reads it since 2024-07-16); False: dot product, as
    #                      their loader did before (the released checkpoints were trained so)
    as_run: bool = False  # True: stage 2 normalises a row's captions across its 11, as the authors' training and
    #                       validation did (src/model.py); False: each vector, as their test-time scoring (corrected)


@dataclass(frozen=True)
class Profile:
    name: str
    backbones: tuple[tuple[str, str | None], ...]  # (open_clip model name, pretrained tag or weights file)
    disclaimer: str  # shown on every figure of this profile
    data: DataConfig
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    paper: PaperRecipe = field(default_factory=PaperRecipe)
    # the paper's first question (notebook 01): the detectors built on CLIP, and the CLIP backbones its figure
    # compares with them besides ``backbones``; neither changes a CLIP number, so runs are not keyed by them
    detectors: tuple[str, ...] = ()
    q1_backbones: tuple[tuple[str, str | None], ...] = ()

    @property
    def synthetic(self) -> bool:
        return self.data.synthetic

    @property
    def paper_n(self) -> dict[str, int]:
        """The N of each split's Mean Rank at N in this profile: the paper's, or the synthetic benchmark's."""
        return {**PAPER_N, **(self.data.fixed_n or {})}

    def with_backbones(self, backbones) -> Profile:
        return replace(self, backbones=tuple((b[0], b[1]) for b in backbones))

    def train_config(self, loss: str, **overrides) -> TrainConfig:
        """The profile's training settings for ``loss`` (any field can be overridden)."""
        return replace(self.train, loss=loss, **overrides)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", backbones=(("fgclip-tiny", None),),
        disclaimer="smoke profile: synthetic benchmark, random-init tiny CLIP (not a result about CLIP)",
        data=DataConfig(synthetic=True, n_objects=240, n_train_objects=600, fixed_n=dict(SYNTHETIC_N)),
        extract=ExtractConfig(batch_size=64),
        train=TrainConfig(epochs=12, batch_size=32, lr=2e-3, patience=4),
        # the paper's recipe, scaled to 600 synthetic objects: smaller batches, larger steps
        paper=PaperRecipe(warmup=StageConfig("warmup", lr=2e-3, margin=0.2, batch_size=32),
                          finetune=StageConfig("fg-ovd", lr=2e-3, margin=0.05, batch_size=32)),
        detectors=("owlvit-tiny", "owlv2-tiny"),  # random-init, 1 layer: the path, not OWL
    ),
    "full": Profile(
        name="full", backbones=(("ViT-B-16", "openai"),), disclaimer="",
        data=DataConfig(synthetic=False),
        extract=ExtractConfig(batch_size=256, precision="half"),  # fp16 autocast on GPU, near their fp16 model
        train=TrainConfig(epochs=30, batch_size=256, lr=1e-4, patience=5),
        detectors=("owlvit-b16", "owlvit-l14", "owlv2-b16", "owlv2-l14"),  # the checkpoints the FG-OVD authors ran
        q1_backbones=(("ViT-L-14", "openai"),),  # the paper's figure: CLIP B/16 and L/14 beside the detectors
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``; ``None``, ``""`` or ``"auto"`` mean ``$FGCLIP_PROFILE``, else ``smoke``."""
    if name in ("", "auto"):
        name = None
    source = "argument 'profile'" if name else f"${PROFILE_ENV}"
    name = name or os.environ.get(PROFILE_ENV) or "smoke"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (from {source}); expected one of {sorted(PROFILES)}")
    return PROFILES[name]


def profile_from_settings(name: str, settings: dict, backbones=None) -> Profile:
    """The profile ``name`` with ``settings`` (as :func:`fgclip_utils.results.run_settings` records them)."""
    base = get_profile(name)
    paper = settings.get("paper", {})
    return replace(base, backbones=tuple(tuple(b) for b in backbones) if backbones else base.backbones,
                   data=DataConfig(**settings["data"]), extract=ExtractConfig(**settings["extract"]),
                   train=TrainConfig(**settings["train"]),
                   paper=PaperRecipe(warmup=StageConfig(**paper["warmup"]), finetune=StageConfig(**paper["finetune"]),
                                     cosine=paper["cosine"]) if paper else base.paper)
