"""Training losses for similarity heads.

The study's (:func:`triplet_loss`, :func:`infonce_loss`, :func:`clip_loss`): ``pos`` is (B,) scores of each
anchor with its positive caption; ``neg`` is (B, K) scores with its hard negatives, where ``neg_mask`` (B, K)
marks the negatives that exist (FG-OVD rows have 0 to 10); they average over rows.

The paper's (FG-CLIP ``src/loss.py``, ``max_violation=False``): hinges on the head's sigmoid scores, *summed*
over the batch, not averaged. :func:`warmup_hinge` on a (B, B) image-caption score matrix, both directions;
:func:`anchored_hinge` on (B, 1 + N) scores of each crop with its positive (column 0) and N negatives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def triplet_loss(pos: torch.Tensor, neg: torch.Tensor, neg_mask: torch.Tensor, margin: float = 0.05,
                 violation: str = "sum") -> torch.Tensor:
    """Hinge ``max(0, margin - s(v, t+) + s(v, t-))`` summed over the negatives (``"sum"``) or taken at the
    hardest one (``"max"``), averaged over the rows that have at least one negative."""
    if violation not in ("sum", "max"):
        raise ValueError(f"violation must be 'sum' or 'max', got {violation!r}")
    hinge = (margin - pos[:, None] + neg).clamp(min=0) * neg_mask
    per_row = hinge.sum(dim=1) if violation == "sum" else hinge.max(dim=1).values
    rows = neg_mask.any(dim=1)
    return per_row[rows].mean() if rows.any() else pos.sum() * 0


def infonce_loss(in_batch: torch.Tensor, neg: torch.Tensor, neg_mask: torch.Tensor, temperature: float = 0.01,
                 same_caption: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over ``[in-batch captions | own hard negatives]`` with the diagonal as the target.

    ``in_batch`` (B, B) scores anchor i with the positive caption of row j; ``same_caption`` (B, B) marks
    pairs that share a caption: those off-diagonal entries are removed, since they are not negatives.
    """
    b = in_batch.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=in_batch.device)
    if same_caption is not None:
        in_batch = in_batch.masked_fill(same_caption & ~eye, float("-inf"))
    logits = torch.cat([in_batch, neg.masked_fill(~neg_mask, float("-inf"))], dim=1) / temperature
    return F.cross_entropy(logits, torch.arange(b, device=in_batch.device))


def clip_loss(similarity: torch.Tensor, temperature: float = 0.01) -> torch.Tensor:
    """Symmetric CLIP contrastive loss of a (B, B) image-caption score matrix (coarse-grained term)."""
    target = torch.arange(similarity.shape[0], device=similarity.device)
    logits = similarity / temperature
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def warmup_hinge(scores: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """The paper's stage-1 loss: for every off-diagonal pair of a (B, B) score matrix (row i = image i,
    column j = caption j, the diagonal the true pairs), ``max(0, margin + s_ij - s_ii)`` (caption retrieval)
    plus ``max(0, margin + s_ij - s_jj)`` (image retrieval), summed over all in-batch negatives."""
    diagonal = scores.diagonal()
    eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_caption = (margin + scores - diagonal[:, None]).clamp(min=0).masked_fill(eye, 0)
    cost_image = (margin + scores - diagonal[None, :]).clamp(min=0).masked_fill(eye, 0)
    return cost_caption.sum() + cost_image.sum()


def anchored_hinge(scores: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """The paper's stage-2 loss: ``sum_j max(0, margin + s(v, t_j) - s(v, t_0))`` over the negatives of each row
    of (B, 1 + N) scores (column 0 the positive), summed over the rows."""
    return (margin + scores[:, 1:] - scores[:, :1]).clamp(min=0).sum()
