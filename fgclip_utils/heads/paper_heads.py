"""The FG-CLIP authors' similarity heads, as their code builds them (STUDY.md 7.3).

They take CLIP's raw (unnormalised) embeddings and end in a sigmoid, and their modules are named as in the
authors' ``src/model.py`` so that the released state dicts load as they are:

- ``paper-linear``: one ``Linear(d, d)`` per side, no activation; both outputs L2-normalised, dot product,
  sigmoid. ``paper-linear-image`` maps only the image side (their ``te-freezed``: text embedding kept),
  ``paper-linear-text`` only the text side (``ve-freezed``).
- ``paper-mlp``: per side ``Linear -> Tanh -> Linear -> Tanh`` (the activation after every layer, the last
  included), then as above.
- ``paper-attention``: tokens ``[CLS, v, t]`` with ``CLS = Linear(1, d)`` applied to the constant 1, one
  multi-head self-attention layer (64 heads at d = 512), score ``sigmoid(out[:, 0, 0])``.

``cosine=False`` scores by the plain dot product of the mapped embeddings: what the authors' code did before
their fix of 2024-07-16 (their loader read the ``cosine`` option from the wrong key), and so what the released
checkpoints were trained with.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.similarity import SimilarityHead
from .base import attention_head_count, seeded

_SIDES = {"paper-linear": (True, True), "paper-linear-image": (True, False), "paper-linear-text": (False, True),
          "paper-mlp": (True, True)}


class PaperMLPs(SimilarityHead):
    """The authors' ``MLPs`` module: a stack of linear layers per mapped side (index 0 = image, 1 = text)."""

    input_space = "raw"

    def __init__(self, kind: str, dim: int, cosine: bool = True, sigmoid: bool = True):
        super().__init__()
        if kind not in _SIDES:
            raise ValueError(f"{kind!r} is not one of the paper's projection heads {tuple(_SIDES)}")
        self.kind, self.cosine, self.sigmoid = kind, cosine, sigmoid
        depth = 2 if kind == "paper-mlp" else 1
        self.linear_layers = nn.ModuleList(
            [nn.ModuleList([nn.Linear(dim, dim) for _ in range(depth)]) if mapped else None
             for mapped in _SIDES[kind]])
        self.act = nn.Tanh() if kind == "paper-mlp" else None

    def _layers(self, x: torch.Tensor, side: int) -> torch.Tensor:
        x = x.float()
        layers = self.linear_layers[side]
        if layers is not None:
            for layer in layers:
                x = layer(x)
                if self.act is not None:
                    x = self.act(x)
        return x

    def _map(self, x: torch.Tensor, side: int) -> torch.Tensor:
        x = self._layers(x, side)
        return F.normalize(x, dim=-1) if self.cosine else x

    def row_scores_as_run(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """(B, K) scores of crops (B, d) against their K captions (B, K, d) as the authors' stage-2 training and
        validation compute them: with ``cosine``, the captions are normalised across the K of a row
        (``F.normalize(..., dim=1)`` on the (B, K, d) batch, their ``src/model.py``), not each vector as their
        test-time scoring and :meth:`score` do."""
        v, t = self._layers(image_emb, 0), self._layers(text_emb, 1)
        if self.cosine:
            v, t = F.normalize(v, dim=-1), F.normalize(t, dim=1)
        return self._out((v[:, None] * t).sum(-1))

    def embed_image(self, image_emb: torch.Tensor) -> torch.Tensor:
        return self._map(image_emb, 0)

    def embed_text(self, text_emb: torch.Tensor) -> torch.Tensor:
        return self._map(text_emb, 1)

    def _out(self, s: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(s) if self.sigmoid else s

    def score(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return self._out((self.embed_image(image_emb) * self.embed_text(text_emb)).sum(-1))

    def similarity_matrix(self, image_emb: torch.Tensor, text_emb: torch.Tensor, chunk: int = 0) -> torch.Tensor:
        return self._out(self.embed_image(image_emb) @ self.embed_text(text_emb).T)


class PaperAttentionHead(SimilarityHead):
    """The authors' ``CrossAttentionModule`` (one attention layer, no MLP on top): their 64 attention heads, or
    the largest count below 64 that divides ``dim``."""

    input_space = "raw"
    kind = "paper-attention"

    def __init__(self, dim: int, num_heads: int = 64, sigmoid: bool = True):
        super().__init__()
        self.sigmoid = sigmoid
        self.cls_linear = nn.Linear(1, dim)
        self.attention_layers = nn.ModuleList(
            [nn.MultiheadAttention(dim, attention_head_count(dim, num_heads), batch_first=True)])

    def stacked_score(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Their forward pass as written: ``[CLS, v, t]`` through the attention layers, per pair."""
        v, t = image_emb.float(), text_emb.float()
        cls = self.cls_linear(torch.ones(len(v), 1, device=v.device, dtype=v.dtype))
        x = torch.stack((cls, v, t), dim=1)
        for attention in self.attention_layers:
            x, _ = attention(x, x, x, need_weights=False)
        s = x[:, 0, 0]
        return torch.sigmoid(s) if self.sigmoid else s

    def _factored(self) -> bool:
        """One attention layer without dropout (theirs): its score factors into per-token terms."""
        return len(self.attention_layers) == 1 and not (self.training and self.attention_layers[0].dropout > 0)

    def _token_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per attention head, each token's logit against the CLS query and the value it adds to the score (its
        value vector through the output's first channel): two (N, heads) tensors."""
        mha = self.attention_layers[0]
        heads = mha.num_heads
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
        cls = self.cls_linear.weight[:, 0] + self.cls_linear.bias
        query = ((cls @ w_q.T + b_q) * (mha.head_dim ** -0.5)).view(heads, -1)
        key = (x @ w_k.T + b_k).view(len(x), heads, -1)
        value = (x @ w_v.T + b_v).view(len(x), heads, -1)
        return (key * query).sum(-1), (value * mha.out_proj.weight[0].view(heads, -1)).sum(-1)

    def _cls_terms(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        cls = (self.cls_linear.weight[:, 0] + self.cls_linear.bias)[None].to(dtype)
        return self._token_terms(cls)

    def _combine(self, logits: tuple, values: tuple) -> torch.Tensor:
        """The CLS output's first channel from the three tokens' (logit, value) terms, broadcast over pairs."""
        shape = torch.broadcast_shapes(*(t.shape for t in logits))
        weights = torch.softmax(torch.stack([t.expand(shape) for t in logits], dim=-1), dim=-1)
        s = (weights * torch.stack([t.expand(shape) for t in values], dim=-1)).sum((-1, -2))
        s = s + self.attention_layers[0].out_proj.bias[0]
        return torch.sigmoid(s) if self.sigmoid else s

    def score(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """:meth:`stacked_score`, computed per token: with one attention layer the CLS query is the same for every
        pair, so the score is a softmax over three per-head logits (CLS, image, text) weighting three values,
        each a function of one token alone; the same arithmetic in another order (equal to rounding)."""
        if not self._factored():
            return self.stacked_score(image_emb, text_emb)
        v, t = image_emb.float(), text_emb.float()
        (lc, vc), (lv, vv), (lt, vt) = self._cls_terms(v.dtype), self._token_terms(v), self._token_terms(t)
        return self._combine((lc, lv, lt), (vc, vv, vt))

    def similarity_matrix(self, image_emb: torch.Tensor, text_emb: torch.Tensor, chunk: int = 1 << 16
                          ) -> torch.Tensor:
        """``(I, T)`` scores from each image's and each text's terms, computed once (not once per pair), in
        chunks of about ``chunk`` pairs."""
        if not self._factored():
            return super().similarity_matrix(image_emb, text_emb, chunk)
        v, t = image_emb.float(), text_emb.float()
        (lc, vc), (lv, vv), (lt, vt) = self._cls_terms(v.dtype), self._token_terms(v), self._token_terms(t)
        rows = max(1, chunk // max(1, len(t)))
        return torch.cat([self._combine((lc, lv[s:s + rows, None], lt[None]), (vc, vv[s:s + rows, None], vt[None]))
                          for s in range(0, len(v), rows)]) if len(v) else torch.empty(0, len(t), device=v.device)


def _paper_attention(kind, dim, *, sigmoid, **_):
    return PaperAttentionHead(dim, sigmoid=sigmoid)


def _paper_mlps(kind, dim, *, cosine, sigmoid):
    return PaperMLPs(kind, dim, cosine=cosine, sigmoid=sigmoid)


# the registry of the paper's kinds: kind -> builder(kind, dim, **options)
PAPER_HEADS: dict[str, Callable[..., SimilarityHead]] = {
    "paper-linear": _paper_mlps, "paper-linear-image": _paper_mlps, "paper-linear-text": _paper_mlps,
    "paper-mlp": _paper_mlps, "paper-attention": _paper_attention}
PAPER_HEAD_KINDS = tuple(PAPER_HEADS)


def build_paper_head(kind: str, dim: int, *, seed: int | None = None, cosine: bool = True, sigmoid: bool = True
                     ) -> SimilarityHead:
    """One of :data:`PAPER_HEAD_KINDS` for ``dim``-d embeddings, with PyTorch's default (random) init as the
    authors' warm-up starts from; ``seed`` makes it reproducible without touching the global RNG."""
    if kind not in PAPER_HEADS:
        raise ValueError(f"unknown paper head kind {kind!r}; expected one of {PAPER_HEAD_KINDS}")
    with seeded(seed):
        return PAPER_HEADS[kind](kind, dim, cosine=cosine, sigmoid=sigmoid)
