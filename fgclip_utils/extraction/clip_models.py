"""Frozen CLIP backbones from open_clip, by name and pretrained tag or local weights file.

``fgclip-tiny`` is a registered, randomly initialised (seeded) config for offline tests and the smoke
profile only: its numbers say nothing about CLIP.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch

from ..atomic_io import sha256_file

TINY_MODEL = "fgclip-tiny"
_CONFIG_DIR = Path(__file__).parents[1] / "model_configs"
open_clip.add_model_config(_CONFIG_DIR)


@dataclass
class ClipBundle:
    """A frozen open_clip model with its eval transform and tokenizer, and what identifies its weights."""

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    name: str
    pretrained: str | None
    device: torch.device
    weights_id: str  # pretrained tag, or "file:<sha256>" of a local weights file, or "random:<seed>"
    embed_dim: int

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the pixels the image tower takes."""
        size = self.model.visual.image_size
        return tuple(size) if isinstance(size, (tuple, list)) else (size, size)

    @property
    def label(self) -> str:
        tag = self.pretrained if self.pretrained and not os.path.isfile(self.pretrained) else \
            (Path(self.pretrained).name if self.pretrained else "random-init")
        return f"{self.name} ({tag})"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: str | torch.device) -> None:
    """Wait for the work queued on ``device`` (a GPU) to finish, so host timings measure it; no-op on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _weights_id(pretrained: str | None, seed: int) -> str:
    if not pretrained:
        return f"random:{seed}"
    if os.path.isfile(pretrained):
        return f"file:{sha256_file(pretrained)}"
    return pretrained


def load_clip(name: str, pretrained: str | None = None, device: str | torch.device | None = None,
              seed: int = 0) -> ClipBundle:
    """Load ``name`` with ``pretrained`` (an open_clip tag, a local weights file, or None for random init).

    The model is put in eval mode with gradients off: the study only ever uses CLIP frozen.
    """
    device = torch.device(device) if device else default_device()
    if name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {name!r}; e.g. ViT-B-16, ViT-L-14 or {TINY_MODEL}")
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained and not os.path.isfile(pretrained) and pretrained not in tags:
        raise ValueError(f"{pretrained!r} is neither a local weights file nor a pretrained tag of {name}; "
                         f"tags: {tags}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained or None,
                                                                     device=device)
    model.eval().requires_grad_(False)
    return ClipBundle(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(name), name=name,
                      pretrained=pretrained, device=device, weights_id=_weights_id(pretrained, seed),
                      embed_dim=int(open_clip.get_model_config(name)["embed_dim"]))
