"""Coarse-grained retention: text-to-image and image-to-text Recall@K on captioned images."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..extraction.embedding_cache import CaptionEmbeddings
from ..heads.architectures import SimilarityHead


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor,
                ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Recall@k of a ``(queries, gallery)`` similarity matrix; ``relevant`` is a same-shape boolean mask.

    A query is a hit at k when its best-scoring relevant item ranks within the top k; irrelevant items tied
    with it rank ahead of it (pessimistic). Every query must have at least one relevant item.
    """
    similarity = torch.as_tensor(similarity, dtype=torch.float32)
    relevant = torch.as_tensor(relevant, dtype=torch.bool)
    if similarity.shape != relevant.shape:
        raise ValueError(f"similarity {tuple(similarity.shape)} and relevant {tuple(relevant.shape)} differ")
    if not relevant.any(dim=1).all():
        raise ValueError("every query needs at least one relevant gallery item")
    best = similarity.masked_fill(~relevant, float("-inf")).max(dim=1, keepdim=True).values
    rank = 1 + ((similarity >= best) & ~relevant).sum(dim=1)
    return {k: float((rank <= k).float().mean()) for k in ks}


@torch.no_grad()
def retrieval_recalls(emb: CaptionEmbeddings, head: SimilarityHead | None = None, ks=(1, 5, 10),
                      device: str | torch.device = "cpu") -> dict[str, float]:
    """``t2i_R@k``, ``i2t_R@k`` and ``rsum`` (sum of the six recalls, in %) for vanilla cosine or ``head``."""
    img, txt = emb.image.to(device), emb.text.to(device)
    if head is None:
        sim = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
    else:
        head = head.to(device).eval()
        sim = head.similarity_matrix(img, txt)
    sim = sim.float().cpu()  # (images, captions)
    rel = emb.caption_set.relevance()  # (captions, images)
    t2i = recall_at_k(sim.T, rel, ks)
    i2t = recall_at_k(sim, rel.T, ks)
    out = {f"t2i_R@{k}": 100 * v for k, v in t2i.items()} | {f"i2t_R@{k}": 100 * v for k, v in i2t.items()}
    out["rsum"] = sum(out.values())
    return out
