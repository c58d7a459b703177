"""The FG-CLIP authors' released heads: loading any of their eight checkpoint files, and fetching them.

``checkpoints/`` of FG-CLIP (commit 695c5d6) holds, per head, a warm-up (``triplet_*``, trained on COCO) and a
fine-tuned (``fg-ovd_*``, trained on the FG-OVD Hard training set) state dict:

| files | head | keys |
| --- | --- | --- |
| ``*_linear-mlp.pt`` | ``paper-linear`` | ``linear_layers.{0,1}.0.{weight,bias}`` (0 = image, 1 = text) |
| ``*_linear-mlp_te-freezed.pt`` | ``paper-linear-image`` | ``linear_layers.0.0.*`` (text embedding kept) |
| ``*_linear-mlp_ve-freezed.pt`` | ``paper-linear-text`` | ``linear_layers.1.0.*`` (image embedding kept) |
| ``*_non-linear-mlp.pt`` | ``paper-mlp`` | two linear layers per side |

The authors' ``MLPs`` module keeps a side's linear layers in a ``ModuleList`` and applies the Tanh outside it,
so the non-linear files' layers are numbered 0 and 1; a layout numbered 0 and 2 (a ``Sequential`` with the
activation inside) loads too. No attention checkpoint was released. All eight files predate the authors' fix of
2024-07-16, so they were trained scoring by dot product: ``cosine=False`` evaluates them as trained.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ..data.assets import ASSETS, asset, file_hash
from ..data.download import fetch_asset
from ..evaluation.similarity import SimilarityHead
from .paper_heads import PaperAttentionHead, build_paper_head

FGCLIP_CHECKPOINTS = {  # release name -> the paper head it loads into
    "triplet_linear-mlp": "paper-linear", "fg-ovd_linear-mlp": "paper-linear",
    "triplet_linear-mlp_te-freezed": "paper-linear-image", "fg-ovd_linear-mlp_te-freezed": "paper-linear-image",
    "triplet_linear-mlp_ve-freezed": "paper-linear-text", "fg-ovd_linear-mlp_ve-freezed": "paper-linear-text",
    "triplet_non-linear-mlp": "paper-mlp", "fg-ovd_non-linear-mlp": "paper-mlp",
}
_KEY = re.compile(r"^linear_layers\.(\d+)\.(\d+)\.(weight|bias)$")


def _released_hash(path: Path) -> str | None:
    """The known hash of a file named like one of the released checkpoints, or None."""
    entry = ASSETS.get(f"fgclip/checkpoints/{path.name}")
    return entry.expected_hash() if entry is not None else None


def _read_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # whatever the file is, the message names it
        raise ValueError(f"{path}: not a loadable state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def _mlp_layout(path: Path, state: dict) -> tuple[str, dict[int, list[int]], int]:
    """(kind, side -> layer indices in order, dim) of an ``MLPs`` state dict; ValueError when it is none."""
    layers: dict[int, dict[int, set]] = {}
    for key in state:
        m = _KEY.match(key)
        if m is None:
            raise ValueError(f"{path}: unexpected key {key!r} (expected 'linear_layers.<side>.<layer>.weight/bias')")
        layers.setdefault(int(m[1]), {}).setdefault(int(m[2]), set()).add(m[3])
    if not layers or set(layers) - {0, 1}:
        raise ValueError(f"{path}: expected sides 0 (image) and/or 1 (text), got {sorted(layers)}")
    depths = {len(v) for v in layers.values()}
    if len(depths) != 1 or depths.pop() not in (1, 2):
        raise ValueError(f"{path}: expected one or two linear layers on each side, got "
                         f"{ {s: sorted(v) for s, v in layers.items()} }")
    for side, per_layer in layers.items():
        for index, fields in per_layer.items():
            if fields != {"weight", "bias"}:
                missing = sorted({"weight", "bias"} - fields)[0]
                raise ValueError(f"{path}: missing 'linear_layers.{side}.{index}.{missing}'")
    depth = len(next(iter(layers.values())))
    sides = tuple(sorted(layers))
    kind = "paper-mlp" if depth == 2 else {(0, 1): "paper-linear", (0,): "paper-linear-image",
                                           (1,): "paper-linear-text"}[sides]
    if depth == 2 and sides != (0, 1):
        raise ValueError(f"{path}: a two-layer head maps both sides, got only side {sides}")
    first = state[f"linear_layers.{sides[0]}.{min(layers[sides[0]])}.weight"]
    return kind, {s: sorted(v) for s, v in layers.items()}, int(first.shape[0])


def load_fgclip_checkpoint(path: str | os.PathLike, *, cosine: bool = True, verify: bool = True,
                           embed_dim: int | None = None) -> SimilarityHead:
    """Load any of the authors' released head files into the matching ``paper-*`` head (eval mode, on CPU).

    A file named like a released one must be that file (its sha256, or git blob id, is checked; ``verify=False``
    skips this for a file of your own). ``cosine=False`` scores by dot product, as the released heads were
    trained. ``embed_dim``: the width of the backbone it will score, checked here rather than at the first score.
    Raises ``ValueError`` naming the file for anything else (non-finite weights included).
    """
    path = Path(path)
    expected = _released_hash(path) if verify else None
    if expected is not None:
        got = file_hash(path, expected.split(":", 1)[0])
        if got != expected:
            raise ValueError(f"{path}: named like the released {path.name} but its hash is {got}, expected {expected} "
                             "(pass verify=False to load a file of your own)")
    state = _read_state(path)
    if any(k.startswith(("cls_linear.", "attention_layers.")) for k in state):
        if "cls_linear.weight" not in state:
            raise ValueError(f"{path}: an attention head needs 'cls_linear.weight'")
        head = PaperAttentionHead(_width(path, int(state["cls_linear.weight"].shape[0]), embed_dim))
        _load(path, head, state)
        return head.eval()
    kind, layers, dim = _mlp_layout(path, state)
    _width(path, dim, embed_dim)
    head = build_paper_head(kind, dim, cosine=cosine)
    renamed = {f"linear_layers.{side}.{position}.{field}": state[f"linear_layers.{side}.{index}.{field}"]
               for side, indices in layers.items() for position, index in enumerate(indices)
               for field in ("weight", "bias")}
    _load(path, head, renamed)
    return head.eval()


def _width(path: Path, dim: int, embed_dim: int | None) -> int:
    if embed_dim is not None and dim != embed_dim:
        raise ValueError(f"{path}: a head of {dim}-d embeddings, but the backbone gives {embed_dim}-d ones")
    return dim


def _load(path: Path, head: SimilarityHead, state: dict) -> None:
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{path}: {bad[0]!r} holds non-finite weights")
    expected = head.state_dict()
    for key, value in state.items():
        if key not in expected:
            raise ValueError(f"{path}: unexpected key {key!r} for a {head.kind} head")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"{path}: '{key}' has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)} "
                             f"for a {head.kind} head of dimension {expected[key].shape[-1]}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{path}: missing {missing[0]!r} for a {head.kind} head")
    head.load_state_dict({k: v.float() for k, v in state.items()})


def download_fgclip_checkpoint(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch one released checkpoint (once) into the cache, verified by its hash; ``name`` without ``.pt``."""
    if name not in FGCLIP_CHECKPOINTS:
        raise KeyError(f"unknown FG-CLIP checkpoint {name!r}; expected one of {sorted(FGCLIP_CHECKPOINTS)}")
    return fetch_asset(asset(f"fgclip/checkpoints/{name}.pt"), folder=cache_dir)
