"""One results row per method: the fine-grained numbers per split, their aggregates, and the coarse-grained
recalls, side by side.

Columns (all per method): ``mr_<split>`` the paper's Mean Rank at N (:data:`~.ranking.PAPER_N`; with
``mr_<split>_ci_low`` / ``_ci_high``), ``mean_rank_sum`` and ``fg`` (the "FG-OVD Mean Rank" of the paper's Table
B: the mean of the eight), ``fg_ci_low`` / ``fg_ci_high`` its 95% bootstrap interval (annotations resampled
within each split) and, for a head, ``fg_vs_vanilla`` (its FG-OVD Mean Rank minus vanilla cosine's on the same
annotations) with its paired interval and p-value; ``acc_<split>`` the study's accuracy over all negatives;
``i2t_r1`` … ``t2i_r10`` and ``rsum`` the standard COCO recalls (in %, each with ``_ci_low`` / ``_ci_high``);
``authors_i2t_r1`` … ``authors_rsum`` the same as the authors' evaluation code computes them
(:func:`~.retrieval.authors_coco_recalls`), beside them.
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch

from ..data.fgovd import SPLITS
from ..extraction.embedding_cache import CaptionEmbeddings, SplitEmbeddings
from .bootstrap import bootstrap_ci, paired_bootstrap
from .fine_grained import SplitResult, evaluate_split
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
    if head is not None:
        head = head.to(device).eval()
    row = {"method": method, **info, **fine_grained_row(test, head, device=device, n_negatives=n_negatives)}
    if coarse is not None:
        with torch.no_grad():
            row.update(retrieval_recalls(coarse, head, device=device))
            if authors_eval:
                row.update({f"authors_{k}": v for k, v in authors_coco_recalls(coarse, head, device).items()})
    return row


@torch.no_grad()
def split_results(test: Mapping[str, SplitEmbeddings], head: SimilarityHead | None = None, *,
                  device: str | torch.device = "cpu", n_negatives: Mapping[str, int] | None = None
                  ) -> dict[str, SplitResult]:
    """Each split of ``test`` ranked by ``head`` (vanilla cosine when None) at its N (default the paper's)."""
    score = head.score if head is not None else None
    return {name: evaluate_split(emb, score, split=name, n_negatives=(n_negatives or PAPER_N).get(name),
                                 device=device) for name, emb in test.items()}


@torch.no_grad()
def fine_grained_row(test: Mapping[str, SplitEmbeddings], head: SimilarityHead | None = None, *,
                     device: str | torch.device = "cpu", n_negatives: Mapping[str, int] | None = None,
                     results: Mapping[str, SplitResult] | None = None,
                     vanilla: Mapping[str, SplitResult] | None = None) -> dict:
    """The fine-grained columns of :func:`method_row`: per split ``mr_<split>`` (with its interval) and
    ``acc_<split>``, ``mean_rank_sum``, ``fg`` with its interval, and for a head the paired comparison with
    vanilla cosine (``fg_vs_vanilla``, its interval and p-value). ``results`` (``head``'s :func:`split_results`)
    and ``vanilla`` (vanilla cosine's) are used instead of ranking again when the caller has them."""
    results = results or split_results(test, head, device=device, n_negatives=n_negatives)
    row, mean_ranks, ranks = {}, {}, {}
    for name, result in results.items():
        mean_ranks[name] = result.summary["mean_rank_at_n"]
        ranks[name] = result.paper_ranks
        row[f"mr_{name}"] = result.summary["mean_rank_at_n"]
        row[f"mr_{name}_ci_low"] = result.summary["mean_rank_at_n_ci_low"]
        row[f"mr_{name}_ci_high"] = result.summary["mean_rank_at_n_ci_high"]
        row[f"acc_{name}"] = result.summary["accuracy"]
    aggregate = paper_aggregate(mean_ranks)
    row.update(mean_rank_sum=aggregate["mean_rank_sum"], fg=aggregate["fgovd_mean_rank"])
    baseline = None
    if head is not None:
        vanilla = vanilla or split_results(test, None, device=device, n_negatives=n_negatives)
        baseline = {name: result.paper_ranks for name, result in vanilla.items()}
    row.update(_fg_intervals(ranks, baseline))
    return row


def _fg_intervals(ranks: dict, baseline: dict | None) -> dict:
    """``fg_ci_low`` / ``fg_ci_high`` (95%, annotations resampled within each split), and with ``baseline``
    (vanilla cosine's paper ranks per split) the paired comparison on the very same annotations:
    ``fg_vs_vanilla`` (the difference of FG-OVD Mean Rank, negative = better than vanilla), its interval and
    p-value."""
    out = dict.fromkeys(("fg_ci_low", "fg_ci_high"), float("nan"))
    kept = {s: ranks[s] for s in PAPER_N if ranks.get(s) is not None and len(ranks[s])}
    if len(kept) != len(PAPER_N):
        return out  # fg is NaN unless all eight splits are ranked
    out["fg_ci_low"], out["fg_ci_high"] = bootstrap_ci(kept)
    if baseline is not None:
        versus = paired_bootstrap(kept, {s: baseline[s] for s in kept})
        out.update(fg_vs_vanilla=versus["diff"], fg_vs_vanilla_ci_low=versus["ci_low"],
                   fg_vs_vanilla_ci_high=versus["ci_high"], fg_vs_vanilla_p=versus["p_value"])
    return out


def methods_table(rows: list[dict]) -> pd.DataFrame:
    """The results table of :func:`method_row` rows, one per method, in the order they were made."""
    return pd.DataFrame(rows)


def mean_rank_columns(table: pd.DataFrame) -> list[str]:
    """The per-split Mean Rank at N columns (``mr_<split>``) of a results table, in the papers' split order."""
    return [f"mr_{s}" for s in SPLITS if f"mr_{s}" in table.columns]
