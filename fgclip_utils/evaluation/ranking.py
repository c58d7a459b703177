"""Ranking metrics: where the positive caption ranks among its hard negatives.

Conventions: a score matrix has the positive in column 0 and the negatives in file order after it; absent
negatives (padding) are ``-inf``; ties count against the positive, so a head that scores everything equal ranks
the positive last; a row with any NaN score ranks its positive last too, so a diverged head never reads as good.

The paper's protocol (FG-CLIP ``src/eval_util.py``, STUDY.md 7.1): per split, only annotations with at least
N negatives are kept (:data:`PAPER_N`), each ranked against its first N; a split's **Mean Rank** is the mean
over the kept annotations; **Mean Rank Sum** is the sum of the eight splits' mean ranks, and the "FG-OVD Mean
Rank" the mean of the eight. A random scorer's expected rank is (N + 2) / 2.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..data.fgovd import PAPER_N


def rank_positive(scores: torch.Tensor) -> torch.Tensor:
    """1-based rank of column 0 in each row of an ``(N, 1 + K)`` score matrix (ties against the positive); a row
    holding a NaN ranks its positive last, 1 + the number of its present (not ``-inf``) negatives."""
    scores = torch.as_tensor(scores)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be (N, 1 + K), got shape {tuple(scores.shape)}")
    negatives = scores[:, 1:]
    ranks = 1 + (negatives >= scores[:, :1]).sum(dim=1)
    nan_rows = torch.isnan(scores).any(dim=1)
    if nan_rows.any():
        present = ~torch.isneginf(negatives)
        ranks[nan_rows] = 1 + present[nan_rows].sum(dim=1)
    return ranks


def fixed_n_ranks(scores: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's protocol on a score matrix: ``kept`` marks the rows with at least ``n`` present negatives,
    ``ranks`` ranks each kept row's positive against its first ``n`` negatives (columns 1..n), ties and NaN as
    in :func:`rank_positive`."""
    scores = torch.as_tensor(scores)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"scores must be (N, 1 + K), got shape {tuple(scores.shape)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    present = ~torch.isneginf(scores[:, 1:])
    kept = present.sum(dim=1) >= n
    ranks = rank_positive(scores[kept][:, :n + 1]) if kept.any() else torch.zeros(0, dtype=torch.long)
    return ranks, kept


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


def chance_mean_rank(n: int) -> float:
    """The expected rank of the positive among ``n`` negatives under a random scorer: (n + 2) / 2."""
    return (n + 2) / 2


def paper_aggregate(mean_ranks: Mapping[str, float]) -> dict[str, float]:
    """``mean_rank_sum`` (Table A's fine-grained column) and ``fgovd_mean_rank`` (Table B's) of the eight
    splits' mean ranks at the paper's N; NaN unless all eight are there."""
    values = [mean_ranks.get(split, float("nan")) for split in PAPER_N]
    total = float(sum(values)) if all(v == v for v in values) else float("nan")
    return {"mean_rank_sum": total, "fgovd_mean_rank": total / len(PAPER_N)}
