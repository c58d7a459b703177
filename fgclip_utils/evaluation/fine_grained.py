"""Rank each annotation's positive caption against its hard negatives, and tabulate per split.

Every split is measured two ways (:mod:`~.ranking`): the paper's **Mean Rank at N** (only annotations with at
least N negatives, each against its first N; N from :data:`~.ranking.PAPER_N`), and the study's extra columns
over all of an annotation's negatives: accuracy (positive strictly first), mean rank and MRR.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import torch

from ..data.fgovd import SPLITS, Split
from ..extraction.embedding_cache import SplitEmbeddings
from .bootstrap import bootstrap_ci
from .ranking import PAPER_N, chance_mean_rank, fixed_n_ranks, rank_positive, summarize
from .similarity import Similarity, cosine, input_space

METRIC_NOTE = ("mean_rank_at_n: the paper's Mean Rank (rows with at least N negatives, each against its first N; "
               "1 is best); accuracy, mean_rank, mrr: the study's, over all of a row's negatives")


@torch.no_grad()
def candidate_scores(emb: SplitEmbeddings, similarity: Similarity | None = None, chunk: int = 65536,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """``(N, 1 + K)`` scores of each row's positive (column 0) and negatives in file order; absent negatives
    are -inf. A head is given the embeddings it takes (unit or raw, see :func:`input_space`)."""
    image, text = emb.inputs(input_space(similarity))
    similarity = similarity or cosine
    cand = emb.candidates()
    scores = torch.full(cand.shape, float("-inf"))
    rows, cols = torch.nonzero(cand >= 0, as_tuple=True)
    device = torch.device(device) if device else torch.device("cpu")
    values = []
    for start in range(0, rows.numel(), chunk):
        r, c = rows[start:start + chunk], cols[start:start + chunk]
        values.append(similarity(image[r].to(device), text[cand[r, c]].to(device)).float().cpu())
    if values:
        scores[rows, cols] = torch.cat(values)
    return scores


@dataclass
class SplitResult:
    split: str
    summary: dict
    ranks: torch.Tensor  # ranks of the rankable rows against all their negatives (the study's)
    scores: torch.Tensor  # (N, 1 + K), all rows
    n_skipped: int
    n_missing_images: int
    paper_ranks: torch.Tensor | None = None  # ranks of the kept rows against their first N negatives
    paper_kept: torch.Tensor | None = None  # (N,) bool: rows the paper's protocol keeps

    def row(self) -> dict:
        info = SPLITS.get(self.split)
        return {"split": self.split, "title": info.title if info else self.split, **self.summary,
                "skipped": self.n_skipped, "missing_images": self.n_missing_images}


def evaluate_split(emb: SplitEmbeddings, similarity: Similarity | None = None, split: str | None = None,
                   n_negatives: int | None = None, **kwargs) -> SplitResult:
    """Both measures of one split. ``n_negatives`` is the paper's N (default: :data:`PAPER_N` of the split, when
    it is one of the eight)."""
    split = split or emb.meta.get("split", "?")
    scores = candidate_scores(emb, similarity, **kwargs)
    mask = emb.rankable
    ranks = rank_positive(scores[mask])
    n_candidates = (emb.candidates()[mask] >= 0).sum(dim=1).double()
    summary = {**summarize(ranks), "chance": float((1 / n_candidates).mean()) if len(n_candidates) else float("nan")}
    n = n_negatives if n_negatives is not None else PAPER_N.get(split)
    paper_ranks = kept = None
    paper = {"paper_n": n, "mean_rank_at_n": float("nan"), "mean_rank_at_n_ci_low": float("nan"),
             "mean_rank_at_n_ci_high": float("nan"), "n_kept": 0,
             "chance_mean_rank_at_n": chance_mean_rank(n) if n else float("nan")}
    if n:
        paper_ranks, kept = fixed_n_ranks(scores, n)
        paper.update(mean_rank_at_n=summarize(paper_ranks)["mean_rank"], n_kept=int(kept.sum()))
        if len(paper_ranks):  # 95% percentile bootstrap over the kept annotations
            low, high = bootstrap_ci(paper_ranks)
            paper.update(mean_rank_at_n_ci_low=low, mean_rank_at_n_ci_high=high)
    present = emb.candidates()[:, 1:] >= 0
    tied = ((scores[:, 1:] == scores[:, :1]) & present).any(dim=1) & mask
    summary = {**paper, **summary, **negative_checks(emb, split), "ties_with_positive": int(tied.sum())}
    return SplitResult(split=split, summary=summary, ranks=ranks, scores=scores, n_skipped=emb.n_skipped,
                       n_missing_images=emb.n_missing_images, paper_ranks=paper_ranks, paper_kept=kept)


def missing_images(rows: pd.DataFrame) -> tuple[int, int]:
    """(annotations without their image, all annotations) of per-split rows (:func:`evaluate_splits`'s)."""
    missing = int(rows["missing_images"].sum()) if "missing_images" in rows else 0
    return missing, missing + int(rows["n"].sum()) + int(rows["skipped"].sum())


def negative_checks(emb: SplitEmbeddings, split: str = "?") -> dict[str, int]:
    """Rows the ranking cannot tell apart, counted: ``identical_negatives`` (a negative with the positive's very
    embedding: the same caption, or one that differs only beyond the text encoder's context; it ties with the
    positive, which counts as a miss), ``truncated_captions`` (those of them whose captions differ: warned) and
    ``repeated_negatives`` (a negative listed twice; kept, as the FG-OVD authors' protocol keeps it)."""
    negatives = emb.negatives
    present = negatives >= 0
    same = torch.zeros_like(present)
    if present.any() and len(emb.text):
        # one id per distinct caption embedding: captions are compared by id, not (rows x negatives x d) values
        _, embedding_id = torch.unique(emb.text, dim=0, return_inverse=True)
        same = present & (embedding_id[negatives.clamp(min=0)] == embedding_id[emb.positive][:, None])
    truncated = same & (negatives != emb.positive[:, None])
    ordered = negatives.sort(dim=1).values
    repeated = ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(dim=1)
    counts = {"identical_negatives": int(same.any(dim=1).sum()), "truncated_captions": int(truncated.any(dim=1).sum()),
              "repeated_negatives": int(repeated.sum())}
    if counts["truncated_captions"]:
        warnings.warn(f"{split}: {counts['truncated_captions']} annotation(s) have a negative that differs from the "
                      "positive only beyond the text encoder's context: they tie with it and count as misses",
                      stacklevel=3)
    return counts


def evaluate_splits(embeddings: Mapping[str, SplitEmbeddings], similarity: Similarity | None = None,
                    method: str = "CLIP (cosine)", n_negatives: Mapping[str, int] | None = None,
                    **kwargs) -> pd.DataFrame:
    """One row per split: the paper's ``mean_rank_at_n`` (with its 95% bootstrap interval over the kept annotations,
    ``mean_rank_at_n_ci_low`` / ``_ci_high``, and ``paper_n``, ``n_kept``, its chance level), the
    study's ``accuracy``, ``mean_rank``, ``mrr`` over all negatives (``n`` rows, its chance), ``skipped``,
    ``missing_images``, ``identical_negatives``, ``truncated_captions``, ``repeated_negatives`` (see
    :func:`negative_checks`), ``ties_with_positive`` (rows where a negative scores exactly the positive's score,
    which counts against it), and the method's name. ``n_negatives`` maps a split to its N
    (default :data:`PAPER_N`; a profile's is :attr:`~fgclip_utils.profiles.Profile.paper_n`)."""
    n_of = n_negatives or PAPER_N
    return split_table({name: evaluate_split(e, similarity, split=name, n_negatives=n_of.get(name), **kwargs)
                        for name, e in embeddings.items()}, method)


def split_table(results: Mapping[str, SplitResult], method: str) -> pd.DataFrame:
    """The per-split table of :func:`evaluate_splits` from results already computed."""
    table = pd.DataFrame([r.row() for r in results.values()])
    table.insert(0, "method", method)
    return table


def failures(split: Split, emb: SplitEmbeddings, result: SplitResult, n: int = 8) -> pd.DataFrame:
    """Up to ``n`` failures (positive not ranked first), those whose best negative beats the positive by the
    largest margin first: annotation, rank, positive, the winning negative and both scores."""
    rows = []
    cand = emb.candidates()
    by_id = {a.id: a for a in split.annotations}
    ranks = torch.full((len(emb),), 0, dtype=torch.long)
    ranks[emb.rankable] = result.ranks
    margin = result.scores[:, 1:].max(dim=1).values - result.scores[:, 0] if cand.shape[1] > 1 else \
        torch.zeros(len(emb))
    margin[~emb.rankable] = float("-inf")
    for row in torch.argsort(margin, descending=True)[:n].tolist():
        if ranks[row] <= 1:
            break
        best = int(torch.argmax(result.scores[row, 1:])) + 1
        ann = by_id[int(emb.annotation_ids[row])]
        rows.append({"annotation_id": ann.id, "image_id": ann.image_id, "rank": int(ranks[row]),
                     "positive": emb.captions[int(cand[row, 0])], "winner": emb.captions[int(cand[row, best])],
                     "positive_score": float(result.scores[row, 0]), "winner_score": float(result.scores[row, best])})
    return pd.DataFrame(rows)


@torch.no_grad()
def annotation_scores(emb: SplitEmbeddings, row: int, methods: Mapping[str, Similarity | None]) -> pd.DataFrame:
    """Captions of one row ([positive, negatives...]) with each method's score and the rank it gives."""
    cand = emb.candidates()[row]
    cand = cand[cand >= 0]
    table = pd.DataFrame({"caption": [emb.captions[i] for i in cand.tolist()],
                          "role": ["positive"] + ["negative"] * (len(cand) - 1)})
    for name, score in methods.items():
        image, text = emb.inputs(input_space(score))
        s = (score or cosine)(image[row].expand(len(cand), -1), text[cand]).float()
        table[name] = s.numpy()
        # each caption's rank among the row's captions (ties against it), by the one rank function
        others = [torch.cat([s[j:j + 1], s[:j], s[j + 1:]]) for j in range(len(s))]
        table[f"rank · {name}"] = rank_positive(torch.stack(others)).numpy()
    return table
