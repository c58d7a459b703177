"""One results row per method: fine-grained numbers per split and coarse-grained recalls, side by side."""
from __future__ import annotations

import pandas as pd
import torch

from ..extraction.embedding_cache import CaptionEmbeddings, SplitEmbeddings
from ..heads.architectures import SimilarityHead
from .fine_grained import evaluate_split
from .retrieval import retrieval_recalls


def method_row(method: str, test: dict[str, SplitEmbeddings], coarse: CaptionEmbeddings,
               head: SimilarityHead | None = None, device: str | torch.device = "cpu", **info) -> dict:
    """``method``, per-split accuracy (``acc_<split>``), coarse recalls, and any ``info`` (loss, params, ...)."""
    score = None
    if head is not None:
        head = head.to(device).eval()
        score = head.score
    row = {"method": method, **info}
    with torch.no_grad():
        for name, emb in test.items():
            row[f"acc_{name}"] = evaluate_split(emb, score, split=name, device=device).summary["accuracy"]
        row.update(retrieval_recalls(coarse, head, device=device))
    return row


def methods_table(rows: list[dict]) -> pd.DataFrame:
    """The results table of :func:`method_row` rows, one per method, in the order they were made."""
    return pd.DataFrame(rows)
