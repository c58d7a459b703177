"""What a similarity S(v, t) is: any callable scoring row i of v with row i of t, vanilla CLIP's :func:`cosine`,
or a :class:`SimilarityHead`, the interface every trained head (the study's and the paper's) shares."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # pairwise: row i with row i -> (M,)


def cosine(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Vanilla CLIP: cosine similarity of row i with row i."""
    return torch.nn.functional.cosine_similarity(image_emb, text_emb, dim=-1)


def as_run_cosine(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Vanilla CLIP as the FG-CLIP authors scored it: the cosine of fp16 features (their ``F.cosine_similarity``
    on the fp16 CUDA features of OpenAI's model), where near-equal scores round to a tie, which counts against
    the positive. :func:`cosine` (fp32) is the corrected score."""
    return torch.nn.functional.cosine_similarity(image_emb.half(), text_emb.half(), dim=-1).float()


def input_space(similarity: Similarity | None) -> str:
    """Which embeddings ``similarity`` takes: a head's (or its bound ``score``'s) ``input_space``, else unit."""
    owner = getattr(similarity, "__self__", similarity)
    return getattr(owner, "input_space", "unit")


class SimilarityHead(nn.Module):
    """Base class: ``score(v, t)`` scores row i of v with row i of t; ``similarity_matrix`` scores all pairs.

    ``input_space`` says which CLIP embeddings the head takes: ``"unit"`` (L2-normalised, the study's heads) or
    ``"raw"`` (as the encoder outputs them, the paper's heads).
    """

    kind = "?"
    input_space = "unit"

    def score(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def similarity_matrix(self, image_emb: torch.Tensor, text_emb: torch.Tensor, chunk: int = 1 << 16
                          ) -> torch.Tensor:
        """``(I, T)`` scores of every image with every text (pairwise ``score`` in chunks)."""
        n_i, n_t = image_emb.shape[0], text_emb.shape[0]
        out = torch.empty(n_i, n_t, device=image_emb.device)
        rows_per_chunk = max(1, chunk // max(1, n_t))
        for start in range(0, n_i, rows_per_chunk):
            img = image_emb[start:start + rows_per_chunk]
            v = img[:, None].expand(-1, n_t, -1).reshape(-1, img.shape[1])
            t = text_emb[None].expand(img.shape[0], -1, -1).reshape(-1, text_emb.shape[1])
            out[start:start + img.shape[0]] = self.score(v, t).view(img.shape[0], n_t)
        return out

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        return self.score(image_emb, text_emb)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
