"""The study's learned similarity functions S(v, t) on frozen, L2-normalised CLIP embeddings.

Every head starts as vanilla CLIP: linear maps are initialised to the identity, the MLP is a residual block
whose last layer is zero, and the attention head adds a zero-initialised correction to the cosine. So
before training, each head ranks exactly like cosine similarity, and training measures what it adds.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.similarity import SimilarityHead
from .base import attention_head_count, seeded


def identity_linear(dim: int) -> nn.Linear:
    layer = nn.Linear(dim, dim)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(dim))
        layer.bias.zero_()
    return layer


class ResidualMLP(nn.Module):
    """x + MLP(x), with the MLP's last layer zero-initialised (identity at start)."""

    def __init__(self, dim: int, hidden: int, depth: int = 1, dropout: float = 0.1, act: str = "gelu"):
        super().__init__()
        layers, width = [], dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU() if act == "gelu" else nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        last = nn.Linear(width, dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ProjectionHead(SimilarityHead):
    """Maps each modality (or one of them) and scores by cosine similarity."""

    def __init__(self, kind: str, image_map: nn.Module | None, text_map: nn.Module | None):
        super().__init__()
        self.kind = kind
        self.image_map = image_map
        self.text_map = text_map

    def embed_image(self, image_emb: torch.Tensor) -> torch.Tensor:
        x = self.image_map(image_emb) if self.image_map is not None else image_emb
        return F.normalize(x, dim=-1)

    def embed_text(self, text_emb: torch.Tensor) -> torch.Tensor:
        x = self.text_map(text_emb) if self.text_map is not None else text_emb
        return F.normalize(x, dim=-1)

    def score(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return (self.embed_image(image_emb) * self.embed_text(text_emb)).sum(-1)

    def similarity_matrix(self, image_emb: torch.Tensor, text_emb: torch.Tensor, chunk: int = 0) -> torch.Tensor:
        return self.embed_image(image_emb) @ self.embed_text(text_emb).T


class AttentionHead(SimilarityHead):
    """Self-attention over the tokens [CLS, v, t] (with modality embeddings); the CLS output, through a
    small MLP, is added to cos(v, t). The MLP's last layer starts at zero, so the untrained head is cosine."""

    kind = "attention"

    def __init__(self, dim: int, heads: int = 8, layers: int = 1, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        heads = attention_head_count(dim, heads)
        self.tokens = nn.Parameter(torch.randn(3, dim) * 0.02)  # CLS, image-type, text-type
        block = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def score(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        cls = self.tokens[0].expand(image_emb.shape[0], -1)
        x = torch.stack([cls, image_emb + self.tokens[1], text_emb + self.tokens[2]], dim=1)
        correction = self.out(self.encoder(x)[:, 0]).squeeze(-1)
        return F.cosine_similarity(image_emb, text_emb, dim=-1) + correction


def _linear(dim, **_):
    return ProjectionHead("linear", identity_linear(dim), identity_linear(dim))


def _linear_image(dim, **_):
    return ProjectionHead("linear-image", identity_linear(dim), None)


def _linear_text(dim, **_):
    return ProjectionHead("linear-text", None, identity_linear(dim))


def _mlp(dim, *, hidden, depth, dropout, **_):
    hidden = hidden or 2 * dim
    return ProjectionHead("mlp", ResidualMLP(dim, hidden, depth, dropout), ResidualMLP(dim, hidden, depth, dropout))


def _attention(dim, *, hidden, dropout, heads, layers, **_):
    return AttentionHead(dim, heads=heads, layers=layers, hidden=hidden or 256, dropout=dropout)


# the registry of the study's kinds: kind -> builder(dim, **options)
STUDY_HEADS: dict[str, Callable[..., SimilarityHead]] = {
    "linear": _linear, "linear-image": _linear_image, "linear-text": _linear_text, "mlp": _mlp,
    "attention": _attention}
STUDY_HEAD_KINDS = tuple(STUDY_HEADS)


def build_study_head(kind: str, dim: int, *, seed: int | None = None, hidden: int | None = None, depth: int = 1,
                     dropout: float = 0.1, heads: int = 8, layers: int = 1) -> SimilarityHead:
    """A study head of ``kind`` (one of :data:`STUDY_HEAD_KINDS`) for ``dim``-d CLIP embeddings.

    ``seed`` makes the random part of the initialisation reproducible without touching global RNG state.
    """
    if kind not in STUDY_HEADS:
        raise ValueError(f"unknown study head kind {kind!r}; expected one of {STUDY_HEAD_KINDS}")
    with seeded(seed):
        return STUDY_HEADS[kind](dim, hidden=hidden, depth=depth, dropout=dropout, heads=heads, layers=layers)
