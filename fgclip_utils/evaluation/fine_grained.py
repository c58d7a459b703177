"""Rank each annotation's positive caption against its hard negatives, and tabulate per split."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
import torch

from ..data.fgovd import SPLITS
from ..extraction.embedding_cache import SplitEmbeddings
from .ranking import rank_positive, summarize

Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # pairwise: row i with row i -> (M,)


def cosine(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Vanilla CLIP: cosine similarity of row i with row i."""
    return torch.nn.functional.cosine_similarity(image_emb, text_emb, dim=-1)


@torch.no_grad()
def candidate_scores(emb: SplitEmbeddings, similarity: Similarity | None = None, chunk: int = 65536,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """``(N, 1 + K)`` scores of each row's positive (column 0) and negatives; absent negatives are -inf."""
    similarity = similarity or cosine
    cand = emb.candidates()
    scores = torch.full(cand.shape, float("-inf"))
    rows, cols = torch.nonzero(cand >= 0, as_tuple=True)
    device = torch.device(device) if device else torch.device("cpu")
    values = []
    for start in range(0, rows.numel(), chunk):
        r, c = rows[start:start + chunk], cols[start:start + chunk]
        img = emb.image[r].to(device)
        txt = emb.text[cand[r, c]].to(device)
        values.append(similarity(img, txt).float().cpu())
    if values:
        scores[rows, cols] = torch.cat(values)
    return scores


@dataclass
class SplitResult:
    split: str
    summary: dict
    ranks: torch.Tensor  # ranks of the rankable rows
    scores: torch.Tensor  # (N, 1 + K), all rows
    n_skipped: int
    n_missing_images: int

    def row(self) -> dict:
        info = SPLITS.get(self.split)
        return {"split": self.split, "title": info.title if info else self.split, **self.summary,
                "skipped": self.n_skipped, "missing_images": self.n_missing_images}


def evaluate_split(emb: SplitEmbeddings, similarity: Similarity | None = None, split: str | None = None,
                   **kwargs) -> SplitResult:
    scores = candidate_scores(emb, similarity, **kwargs)
    mask = emb.rankable
    ranks = rank_positive(scores[mask])
    n_candidates = (emb.candidates()[mask] >= 0).sum(dim=1).double()
    summary = {**summarize(ranks), "chance": float((1 / n_candidates).mean()) if len(n_candidates) else float("nan")}
    return SplitResult(split=split or emb.meta.get("split", "?"), summary=summary, ranks=ranks,
                       scores=scores, n_skipped=emb.n_skipped, n_missing_images=emb.n_missing_images)


def evaluate_splits(embeddings: Mapping[str, SplitEmbeddings], similarity: Similarity | None = None,
                    method: str = "CLIP (cosine)", **kwargs) -> pd.DataFrame:
    """One row per split: accuracy, mean_rank, mrr, n, skipped, missing_images, and the method's name."""
    rows = [evaluate_split(e, similarity, split=name, **kwargs).row() for name, e in embeddings.items()]
    table = pd.DataFrame(rows)
    table.insert(0, "method", method)
    return table


def evaluate_methods(embeddings: Mapping[str, Mapping[str, SplitEmbeddings]], similarity: Similarity | None = None,
                     **kwargs) -> pd.DataFrame:
    """:func:`evaluate_splits` for several methods (e.g. one per backbone: label -> split -> embeddings), stacked."""
    return pd.concat([evaluate_splits(embs, similarity, method=label, **kwargs) for label, embs in embeddings.items()],
                     ignore_index=True)
