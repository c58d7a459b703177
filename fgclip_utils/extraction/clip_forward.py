"""Running a frozen CLIP on batches: numeric precision, captions encoded once at their own length.

``precision="auto"`` means bf16 autocast on a CUDA GPU with native bf16 (compute capability 8.0 or newer), fp16
autocast on an older one (a T4 or V100, where bf16 would be emulated and slow), and plain fp32 on CPU, so CPU
results stay exact; ``"bf16"`` also works on a CPU with native bf16 (AVX512-BF16, AMX). ``"half"`` is fp16 autocast on a
GPU and fp32 on a CPU, which the ``full`` profile uses: close to the FG-CLIP authors' extraction, not identical
(OpenAI's ``clip.load`` runs the model's weights in fp16 on CUDA, with a LayerNorm that computes in fp32, as
autocast's does; matmul and activation rounding differ).

Embeddings come back L2-normalised (what cosine similarity and the study's heads take) together with the norm
each had before normalising, so the raw embedding (what the paper's heads take) is ``unit * norm``.

Captions are tokenized to CLIP's 77-token context but encoded only up to the longest caption of their
batch: for a causal text transformer that pools at the end-of-text token (OpenAI CLIP and every open_clip
``CLIP`` with ``text_pool_type="argmax"``), the padding after that token cannot influence it, so cutting it
changes nothing but the cost (tested against ``model.encode_text``). Captions are sorted by length so that a
batch holds captions of similar length, and each distinct caption is encoded once.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from tqdm.auto import tqdm

from .clip_models import ClipBundle

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "half")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(device: str | torch.device, precision: str = "auto") -> str:
    """The concrete precision (fp32, bf16 or fp16) that ``precision`` means on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if native_bf16(device) else "fp16"
    if precision == "half":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 autocast is for GPUs; on CPU use fp32 or bf16")
    return precision


def native_bf16(device: str | torch.device) -> bool:
    """Whether a CUDA device computes bf16 natively (Ampere, compute capability 8.0, and newer);
    ``torch.cuda.is_bf16_supported()`` also says yes where bf16 is only emulated."""
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def unit_and_norm(emb: torch.Tensor) -> torch.Tensor:
    """Rows ``[emb / |emb|, |emb|]`` in float32: the L2-normalised embedding with its norm as a last column."""
    emb = emb.float()
    return torch.cat([F.normalize(emb, dim=-1), emb.norm(dim=-1, keepdim=True)], dim=-1)


class DegenerateEmbeddings(ValueError):
    """A backbone's tower gave non-finite or all-zero embeddings: every number from them would be meaningless."""


def check_sound(bundle: ClipBundle, tower: str, rows: torch.Tensor) -> torch.Tensor:
    """``rows`` (unit vectors, norm last, on the CPU) when every one is finite with a positive norm; else
    :class:`DegenerateEmbeddings` naming the backbone and the ``tower`` ("image" or "text")."""
    bad = ~(torch.isfinite(rows).all(dim=1) & (rows[:, -1] > 0))
    if bad.any():
        raise DegenerateEmbeddings(f"{bundle.label}: the {tower} tower gave {int(bad.sum())} non-finite or all-zero "
                                   f"embeddings in a batch of {len(rows)}; nothing is cached or ranked from this "
                                   "backbone (check its weights and precision)")
    return rows


@contextlib.contextmanager
def autocast(device: str | torch.device, precision: str = "auto", model: torch.nn.Module | None = None):
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32).

    With ``model`` and gradients off, the model's frozen weights are cast once per context instead of at
    every use: autocast only caches the casts of leaf tensors that require grad, so their flag is raised for
    the duration (no graph is built under ``no_grad``) and restored after. The numbers are the same, and the
    forward pass faster (``benchmarks/README.md``).
    """
    device = torch.device(device)
    resolved = resolve_precision(device, precision)
    if resolved == "fp32":
        yield
        return
    frozen = [] if model is None or torch.is_grad_enabled() else \
        [p for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    try:
        for p in frozen:
            p.requires_grad_(True)
        with torch.autocast(device.type, dtype=_DTYPES[resolved]):
            yield
    finally:
        for p in frozen:
            p.requires_grad_(False)


def _trimmable(model: torch.nn.Module) -> bool:
    """Whether padding after the end-of-text token provably cannot change ``model``'s text embedding."""
    return (isinstance(model, open_clip.CLIP) and getattr(model, "attn_mask", None) is not None
            and getattr(model, "text_pool_type", None) == "argmax")


def encode_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)``, computed only up to the batch's last end-of-text token when that is exact.

    Mirrors ``open_clip.CLIP.encode_text`` with the positional embedding and causal mask cut to the
    sequence length; any other text tower is run as it is.
    """
    if not _trimmable(model):
        return model.encode_text(tokens)
    length = int(tokens.argmax(dim=-1).max()) + 1  # the end-of-text token has the largest id
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type)
    if model.text_projection is not None:
        x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) \
            else x @ model.text_projection
    return x


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@torch.no_grad()  # not inference_mode: these tensors are later used as training inputs
def encode_texts(bundle: ClipBundle, texts: list[str], batch_size: int = 256, progress: bool = True,
                 precision: str = "auto", with_norms: bool = False) -> torch.Tensor:
    """L2-normalised float32 CPU embeddings of ``texts``, in order, each distinct text encoded once; with
    ``with_norms``, each row also holds its norm before normalising as a last column (see :func:`unit_and_norm`).

    Texts are batched by length (characters, a proxy for tokens) and tokenized batch by batch, so the
    memory beyond the result is one batch of tokens.
    """
    distinct = sorted(set(texts))
    out = torch.empty(len(distinct), bundle.embed_dim + 1)
    order = sorted(range(len(distinct)), key=lambda i: len(distinct[i]))
    with tqdm(total=len(distinct), desc="captions", disable=not progress, unit="caption") as bar:
        for part in _batches(len(order), batch_size):
            rows = order[part]
            tokens = bundle.tokenizer([distinct[i] for i in rows]).to(bundle.device, non_blocking=True)
            with autocast(bundle.device, precision, bundle.model):
                emb = encode_tokens(bundle.model, tokens)
            out[rows] = check_sound(bundle, "text", unit_and_norm(emb).cpu())
            bar.update(len(rows))
    if not with_norms:
        out = out[:, :-1].contiguous()
    if texts == distinct:
        return out
    index = {t: i for i, t in enumerate(distinct)}
    return out[torch.tensor([index[t] for t in texts], dtype=torch.long)]


@torch.no_grad()
def encode_pixels(bundle: ClipBundle, pixels: torch.Tensor, precision: str = "auto") -> torch.Tensor:
    """Embeddings (on the model's device) of a preprocessed pixel batch: L2-normalised float32 rows with their
    norm as a last column (see :func:`unit_and_norm`)."""
    pixels = pixels.to(bundle.device, non_blocking=True)
    with autocast(bundle.device, precision, bundle.model):
        emb = bundle.model.encode_image(pixels)
    return unit_and_norm(emb)
