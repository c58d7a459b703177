"""The FG-CLIP authors' released linear heads: loading their state dicts into the study's heads, and download.

Their checkpoints are 512x512 linear maps for ViT-B/16 (``linear_layers.0`` = image, ``.1`` = text); a frozen
side has no weights, so ``*_te-freezed`` loads as ``linear-image`` and ``*_ve-freezed`` as ``linear-text``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..data.assets import asset
from ..data.download import download_file
from .architectures import ProjectionHead, build_head

FGCLIP_CHECKPOINTS = {  # name -> the head it loads into
    "fg-ovd_linear-mlp": "linear", "fg-ovd_linear-mlp_te-freezed": "linear-image",
    "fg-ovd_linear-mlp_ve-freezed": "linear-text", "triplet_linear-mlp": "linear",
    "triplet_linear-mlp_te-freezed": "linear-image", "triplet_linear-mlp_ve-freezed": "linear-text",
}
_SIDES = {0: "image_map", 1: "text_map"}


def load_fgclip_checkpoint(path: str | os.PathLike) -> ProjectionHead:
    """Load a released FG-CLIP linear checkpoint (``linear_layers.{0,1}.0.{weight,bias}``; 0 = image,
    1 = text) into our ``linear`` head, or ``linear-image``/``linear-text`` when one side was frozen."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a loadable state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    sides = sorted({int(k.split(".")[1]) for k in state if k.startswith("linear_layers.")})
    if not sides or set(sides) - set(_SIDES):
        raise ValueError(f"{path}: expected keys 'linear_layers.{{0,1}}.0.weight/bias', got {sorted(state)[:6]}")
    for side in sides:
        prefix = f"linear_layers.{side}."
        extra = [k for k in state if k.startswith(prefix) and not k.startswith(prefix + "0.")]
        if extra:
            raise ValueError(f"{path}: {extra[0]!r}: only single linear layers (linear-mlp) load into our heads")
        for field in ("weight", "bias"):
            if f"linear_layers.{side}.0.{field}" not in state:
                raise ValueError(f"{path}: missing 'linear_layers.{side}.0.{field}'")
    dim = state[f"linear_layers.{sides[0]}.0.weight"].shape[0]
    kind = "linear" if sides == [0, 1] else ("linear-image" if sides == [0] else "linear-text")
    head = build_head(kind, dim)
    for side in sides:
        layer = getattr(head, _SIDES[side])
        w, b = state[f"linear_layers.{side}.0.weight"], state[f"linear_layers.{side}.0.bias"]
        if tuple(w.shape) != (dim, dim) or tuple(b.shape) != (dim,):
            raise ValueError(f"{path}: 'linear_layers.{side}.0' has shapes {tuple(w.shape)}/{tuple(b.shape)}, "
                             f"expected ({dim}, {dim})/({dim},)")
        layer.load_state_dict({"weight": w.float(), "bias": b.float()})
    return head


def download_fgclip_checkpoint(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch one released checkpoint (once) into the cache; a file that does not load is never kept."""
    if name not in FGCLIP_CHECKPOINTS:
        raise KeyError(f"unknown FG-CLIP checkpoint {name!r}; expected one of {sorted(FGCLIP_CHECKPOINTS)}")

    def loads(p: Path) -> bool:
        try:
            load_fgclip_checkpoint(p)
        except ValueError:
            return False
        return True

    entry = asset(f"fgclip/checkpoints/{name}.pt")
    return download_file(entry.url, entry.local_path(cache_dir), validate=loads)
