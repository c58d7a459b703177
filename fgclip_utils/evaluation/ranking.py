"""Ranking metrics: where the positive caption ranks among its hard negatives.

Conventions: a score matrix has the positive in column 0; padded (absent) negatives are ``-inf``; ties
count against the positive, so a head that scores everything equal ranks the positive last.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def rank_positive(scores: torch.Tensor) -> torch.Tensor:
    """1-based rank of column 0 in each row of an ``(N, 1 + K)`` score matrix (ties against the positive)."""
    scores = torch.as_tensor(scores)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be (N, 1 + K), got shape {tuple(scores.shape)}")
    pos = scores[:, :1]
    return 1 + (scores[:, 1:] >= pos).sum(dim=1)


def summarize(ranks: torch.Tensor | Sequence[int]) -> dict[str, float]:
    """``accuracy`` (share ranked first), ``mean_rank``, ``mrr`` and ``n`` of a set of 1-based ranks."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64).flatten()
    n = int(ranks.numel())
    if n == 0:
        return {"accuracy": float("nan"), "mean_rank": float("nan"), "mrr": float("nan"), "n": 0}
    if (ranks < 1).any():
        raise ValueError("ranks are 1-based; got a value below 1")
    return {
        "accuracy": float((ranks == 1).double().mean()),
        "mean_rank": float(ranks.mean()),
        "mrr": float((1.0 / ranks).mean()),
        "n": n,
    }
