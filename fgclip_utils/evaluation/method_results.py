"""One results row per method: the fine-grained numbers per split, their aggregates, and the coarse-grained
recalls, side by side.

Columns (all per method): ``mr_<split>`` the paper's Mean Rank at N (:data:`~.ranking.PAPER_N`),
``mean_rank_sum`` and ``fg`` (the "FG-OVD Mean Rank" of the paper's Table B: the mean of the eight),
``acc_<split>`` the study's accuracy over all negatives; ``i2t_r1`` … ``t2i_r10`` and ``rsum`` the standard COCO
recalls (in %); ``authors_i2t_r1`` … ``authors_rsum`` the same as the authors' evaluation code computes them
(:func:`~.retrieval.authors_coco_recalls`), beside them.
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch

from ..data.fgovd import SPLITS
from ..extraction.embedding_cache import CaptionEmbeddings, SplitEmbeddings
from .fine_grained import evaluate_split
from .ranking import PAPER_N, paper_aggregate
from .retrieval import authors_coco_recalls, retrieval_recalls
from .similarity import SimilarityHead

RECALLS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")


def method_row(method: str, test: dict[str, SplitEmbeddings], coarse: CaptionEmbeddings | None,
               head: SimilarityHead | None = None, device: str | torch.device = "cpu", authors_eval: bool = True,
               n_negatives: Mapping[str, int] | None = None, **info) -> dict:
    """The row of ``method`` (vanilla cosine when ``head`` is None): see the module docstring; ``n_negatives``
    maps a split to its N (default :data:`~.ranking.PAPER_N`); ``info`` adds columns (stage, kind, loss, params,
    ...)."""
    score = None
    if head is not None:
        head = head.to(device).eval()
        score = head.score
    row = {"method": method, **info}
    mean_ranks = {}
    with torch.no_grad():
        for name, emb in test.items():
            n = (n_negatives or PAPER_N).get(name)
            summary = evaluate_split(emb, score, split=name, n_negatives=n, device=device).summary
            mean_ranks[name] = summary["mean_rank_at_n"]
            row[f"mr_{name}"] = summary["mean_rank_at_n"]
            row[f"acc_{name}"] = summary["accuracy"]
        aggregate = paper_aggregate(mean_ranks)
        row.update(mean_rank_sum=aggregate["mean_rank_sum"], fg=aggregate["fgovd_mean_rank"])
        if coarse is not None:
            row.update(retrieval_recalls(coarse, head, device=device))
            if authors_eval:
                row.update({f"authors_{k}": v for k, v in authors_coco_recalls(coarse, head, device).items()})
    return row


def methods_table(rows: list[dict]) -> pd.DataFrame:
    """The results table of :func:`method_row` rows, one per method, in the order they were made."""
    return pd.DataFrame(rows)


def mean_rank_columns(table: pd.DataFrame) -> list[str]:
    """The per-split Mean Rank at N columns (``mr_<split>``) of a results table, in the papers' split order."""
    return [f"mr_{s}" for s in SPLITS if f"mr_{s}" in table.columns]
