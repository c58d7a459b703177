"""Run profiles: ``smoke`` (synthetic benchmark, tiny random-init CLIP, CPU, minutes) and ``full``.

A notebook's parameters cell sets ``profile``; left as None it comes from ``$FGCLIP_PROFILE``, then
``smoke``. Every figure and table made in ``smoke`` carries :attr:`Profile.disclaimer`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

PROFILE_ENV = "FGCLIP_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str
    backbones: tuple[tuple[str, str | None], ...]  # (open_clip model name, pretrained tag or weights file)
    synthetic: bool  # True: the offline synthetic benchmark; False: FG-OVD + COCO
    disclaimer: str  # shown on every figure of this profile
    n_objects: int = 0  # synthetic benchmark size (test split)
    n_train_objects: int = 0
    scale_factor: float = 1.0
    batch_size: int = 128
    image_workers: int = 16
    # head training (notebook 02)
    train_epochs: int = 30
    train_batch_size: int = 256
    train_lr: float = 1e-4
    train_patience: int = 5
    coco_limit: int | None = None  # images of the coarse-grained test caption set (None = all 5k)
    coco_train_limit: int = 10000  # Karpathy train images for the optional coarse-grained training term

    def with_backbones(self, backbones) -> "Profile":
        return replace(self, backbones=tuple((b[0], b[1]) for b in backbones))


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", backbones=(("fgclip-tiny", None),), synthetic=True,
        disclaimer="smoke profile: synthetic benchmark, random-init tiny CLIP (not a result about CLIP)",
        n_objects=240, n_train_objects=600, batch_size=64,
        train_epochs=12, train_batch_size=32, train_lr=2e-3, train_patience=4,
    ),
    "full": Profile(
        name="full", backbones=(("ViT-B-16", "openai"),), synthetic=False,
        disclaimer="", batch_size=256,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else ``$FGCLIP_PROFILE``, else ``smoke``."""
    source = "argument 'profile'" if name else f"${PROFILE_ENV}"
    name = name or os.environ.get(PROFILE_ENV) or "smoke"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r} (from {source}); expected one of {sorted(PROFILES)}")
    return PROFILES[name]
