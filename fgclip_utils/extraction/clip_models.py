"""Frozen CLIP backbones from open_clip: by name and pretrained tag, local weights file, ``hf-hub:`` name or
``local-dir:`` folder, always with the activation their weights were trained with.

OpenAI's CLIP weights were trained with QuickGELU. open_clip builds ``ViT-B-16`` with plain GELU and, since
version 2.29, only *warns* when the ``openai`` tag is loaded into it, which gives silently wrong embeddings.
:func:`load_clip` therefore builds every model whose pretrained tag's config says ``quick_gelu`` with QuickGELU.
A local weights file has no config: pass ``quick_gelu=True`` (or use a ``-quickgelu`` model name); a file that
looks like OpenAI's weights without either gets a warning.

``fgclip-tiny`` is a registered, randomly initialised (seeded) config for offline tests and the smoke profile
only: its numbers say nothing about CLIP.
"""
from __future__ import annotations

import difflib
import functools
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import open_clip
import torch
from huggingface_hub.constants import HF_HUB_CACHE

from ..atomic_io import sha256_file
from ..cache import require_space, weights_dir
from ..profiles import SCHEMES, backbone_label
from .pixel_transform import PixelTransform, split_transform

TINY_MODEL = "fgclip-tiny"
QUICKGELU_SUFFIX = "-quickgelu"
EXTRAS = {"transformers": "siglip", "sentencepiece": "siglip"}  # packages some tokenizers need -> our extra
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
    # the pretrained tag, "file:<sha256>" of a local weights file, the hf-hub/local-dir name, or "random:<seed>"
    weights_id: str
    embed_dim: int
    quick_gelu: bool = False  # the activation the model runs with

    @cached_property
    def pixels(self) -> PixelTransform:
        """:attr:`preprocess` split into its geometry (shared by backbones with the same) and normalisation."""
        return split_transform(self.preprocess)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the pixels the image tower takes."""
        size = self.model.visual.image_size  # every open_clip image tower has it (ViT, ResNet, timm)
        return tuple(size) if isinstance(size, tuple | list) else (size, size)

    @property
    def label(self) -> str:
        return backbone_label(self.name, self.pretrained)


def as_bundles(backbones: ClipBundle | Sequence[ClipBundle]) -> list[ClipBundle]:
    """One backbone or several, as a list: the entry points that take either return one result or a list."""
    return [backbones] if isinstance(backbones, ClipBundle) else list(backbones)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: str | torch.device) -> None:
    """Wait for the work queued on ``device`` (a GPU) to finish, so host timings measure it; no-op on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _close(word: str, choices: list[str]) -> str:
    matches = difflib.get_close_matches(word, choices, n=5, cutoff=0.5)
    return f"close matches: {matches}" if matches else f"e.g. {choices[:8]}"


def check_backbone(name: str, pretrained: str | None) -> None:
    """Raise ``ValueError`` (listing close matches) unless ``name`` is an open_clip model, an ``hf-hub:`` or
    ``local-dir:`` name, and ``pretrained`` one of its tags, a local weights file, or None."""
    if name.startswith(SCHEMES):
        if pretrained:
            raise ValueError(f"{name!r} brings its own weights: leave pretrained empty (got {pretrained!r})")
        if name.startswith("local-dir:") and not Path(name.removeprefix("local-dir:")).is_dir():
            raise ValueError(f"{name!r}: no such folder")
        return
    models = open_clip.list_models()
    if name not in models:
        raise ValueError(f"unknown open_clip model {name!r}; {_close(name, models)}")
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained and not os.path.isfile(pretrained) and pretrained not in tags:
        raise ValueError(f"{pretrained!r} is neither a local weights file nor a pretrained tag of {name}; "
                         f"tags: {tags}" + (f" ({_close(pretrained, tags)})" if tags else ""))


def weights_id_for(name: str, pretrained: str | None, seed: int = 0, file_sha: str | None = None) -> str:
    """What identifies the weights :func:`load_clip` gives for ``name``/``pretrained``, without loading them: the
    tag, ``file:<sha256>`` of a local file, the ``hf-hub:``/``local-dir:`` name, or ``random:<seed>``."""
    if name.startswith(SCHEMES):
        return name
    if pretrained and os.path.isfile(pretrained):
        return f"file:{file_sha or sha256_file(pretrained)}"
    return pretrained or f"random:{seed}"


def tag_wants_quick_gelu(name: str, pretrained: str | None) -> bool:
    """Whether open_clip's config of pretrained tag ``pretrained`` for ``name`` says the weights use QuickGELU."""
    if not pretrained or os.path.isfile(pretrained) or name.startswith(SCHEMES):
        return False
    return bool(open_clip.get_pretrained_cfg(name, pretrained).get("quick_gelu", False))


def _openai_weight_hashes() -> set[str]:
    """sha256 values of OpenAI's released weights (open_clip's URLs for them carry the hash)."""
    hashes = set()
    for model, tag in open_clip.list_pretrained():
        if tag == "openai":
            hashes.update(re.findall(r"/([0-9a-f]{64})/", open_clip.get_pretrained_cfg(model, tag).get("url", "")))
    return hashes


def looks_like_openai_weights(path: str | os.PathLike, sha256: str | None = None) -> bool:
    """Whether a weights file is (or looks like) one of OpenAI's: a known OpenAI sha256, a TorchScript archive
    (how OpenAI ships them), or a state dict with OpenAI's ``input_resolution``/``context_length`` entries."""
    if (sha256 or sha256_file(path)) in _openai_weight_hashes():
        return True
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist()):
                return True
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a plain state dict: nothing more to tell
        return False
    return isinstance(state, dict) and {"input_resolution", "context_length"} <= set(state)


def uses_quick_gelu(model: torch.nn.Module) -> bool:
    return any(isinstance(m, open_clip.transformer.QuickGELU) for m in model.modules())


def _tokenizer(name: str) -> Callable:
    try:
        return open_clip.get_tokenizer(name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        extra = next((e for pkg, e in EXTRAS.items() if pkg in missing), "siglip")
        raise ImportError(f"the tokenizer of {name!r} needs a package that is not installed ({exc}); install the "
                          f"'{extra}' extra: pip install 'fgclip-utils[{extra}]' (or -e '.[{extra}]')") from exc


@torch.no_grad()
def _embed_dim(model: torch.nn.Module, tokenizer: Callable, device: torch.device) -> int:
    return int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])


@functools.cache
def parameter_counts(model: str) -> tuple[int, int]:
    """(all, image tower) parameters of open_clip's ``model``, built on the meta device (no memory, no weights);
    once per model name, however many of its weights a panel lists."""
    net = open_clip.create_model(model, device="meta")
    return sum(p.numel() for p in net.parameters()), sum(p.numel() for p in net.visual.parameters())


def weights_cached(model: str, pretrained: str | None, cache_dir: str | None = None) -> bool:
    """Whether open_clip would find ``model``'s ``pretrained`` weights in ``cache_dir`` (default
    :func:`~fgclip_utils.cache.weights_dir`, else the Hugging Face cache) without downloading them; random init,
    a weights file and a name open_clip does not list count as nothing to fetch."""
    cfg = open_clip.get_pretrained_cfg(model, pretrained) if pretrained and not os.path.isfile(pretrained) else {}
    folder = cache_dir or weights_dir()  # None: each library's own default, as open_clip downloads them
    if cfg.get("hf_hub"):
        repo = os.path.split(cfg["hf_hub"])[0].replace("/", "--")
        snapshots = Path(folder or HF_HUB_CACHE) / f"models--{repo}" / "snapshots"
        return snapshots.is_dir() and any(f.is_file() for f in snapshots.rglob("*"))
    if cfg.get("url"):
        return (Path(folder or Path.home() / ".cache" / "clip") / os.path.basename(cfg["url"])).is_file()
    return True


def check_weights_space(pairs) -> float:
    """Bytes of the weights of ``pairs`` (model, pretrained) not yet in the weights cache (about 4 per parameter);
    before any is downloaded, says so and raises :class:`~fgclip_utils.cache.InsufficientSpace` when they would
    not fit there (on Colab with ``drive_cache``: on Drive)."""
    todo = [(m, p) for m, p in pairs if not weights_cached(m, p)]
    need = sum(parameter_counts(m)[0] * 4 for m, _ in todo)
    if need:
        require_space(need, weights_dir() or HF_HUB_CACHE, f"the weights of {len(todo)} backbone(s)",
                      "free some space where the weights go ($FGCLIP_WEIGHTS; on Colab with drive_cache, Drive), or "
                      "sweep a smaller panel (model_set 'openai' or 'all-small', or a list of backbones)",
                      desc="model weights")
    return need


def load_clip(name: str, pretrained: str | None = None, device: str | torch.device | None = None, seed: int = 0, *,
              quick_gelu: bool | None = None) -> ClipBundle:
    """Load ``name`` with ``pretrained`` (an open_clip tag, a local weights file, or None for random init), or an
    ``hf-hub:org/repo`` / ``local-dir:/path`` name that brings its own weights.

    ``quick_gelu`` None means: QuickGELU when the tag's config says so (all ``openai`` weights) or the name ends
    in ``-quickgelu``; True or False forces it. The model is put in eval mode with gradients off: the study only
    ever uses CLIP frozen.
    """
    device = torch.device(device) if device else default_device()
    check_backbone(name, pretrained)
    check_weights_space([(name, pretrained)])
    is_file = bool(pretrained) and os.path.isfile(pretrained)
    file_sha = sha256_file(pretrained) if is_file else None
    if quick_gelu is None:
        quick_gelu = tag_wants_quick_gelu(name, pretrained)
        if is_file and not name.endswith(QUICKGELU_SUFFIX) and looks_like_openai_weights(pretrained, file_sha):
            warnings.warn(f"{pretrained} looks like OpenAI CLIP weights, which were trained with QuickGELU, but "
                          f"{name} builds plain GELU: pass quick_gelu=True or use {name}{QUICKGELU_SUFFIX}",
                          stacklevel=2)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="QuickGELU mismatch")  # we decided it above, knowingly
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained or None, device=device, force_quick_gelu=bool(quick_gelu),
            cache_dir=weights_dir())
    model.eval().requires_grad_(False)
    tokenizer = _tokenizer(name)
    weights_id = weights_id_for(name, pretrained, seed, file_sha)
    if name.startswith(SCHEMES):
        embed_dim = _embed_dim(model, tokenizer, device)
    else:
        embed_dim = int(open_clip.get_model_config(name)["embed_dim"])
    return ClipBundle(model=model, preprocess=preprocess, tokenizer=tokenizer, name=name, pretrained=pretrained,
                      device=device, weights_id=weights_id, embed_dim=embed_dim, quick_gelu=uses_quick_gelu(model))
