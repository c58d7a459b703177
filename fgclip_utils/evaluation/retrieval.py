"""Coarse-grained retention: text-to-image and image-to-text Recall@K on captioned images.

:func:`retrieval_recalls` is the standard measure (cosine of L2-normalised embeddings, or a head's scores; an
image query is a hit at k when any of its captions ranks within the top k; ties pessimistic).
:func:`authors_coco_recalls` is what the FG-CLIP authors' ``src/metrics.py`` computes, defects included, so
that the gap between the two (their vanilla CLIP 41.5 / 22.6 I->T / T->I R@1 against open_clip's published
52.4 / 33.1 for ViT-B-16 ``openai``) is explained rather than guessed at:

- vanilla scores are normalised per *dimension* across samples (``np.linalg.norm(x, axis=0)``), not per
  vector; for an image query that is a (1, d) array, so the query becomes the sign of each coordinate;
- their arrays hold the first image's captions (and image) twice, and each image's captions in reverse order;
- every image is assumed to have exactly the same number of captions (5 in COCO);
- ranks come from ``numpy.argsort(d)[::-1]``, whose order among equal scores is numpy's.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..extraction.embedding_cache import CaptionEmbeddings
from .bootstrap import bootstrap_ci
from .similarity import SimilarityHead


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
    rank = _query_ranks(similarity, relevant)
    return {k: float((rank <= k).float().mean()) for k in ks}


def _query_ranks(similarity: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Each query's rank of its best-scoring relevant item (irrelevant ties ahead of it)."""
    best = similarity.masked_fill(~relevant, float("-inf")).max(dim=1, keepdim=True).values
    return 1 + ((similarity >= best) & ~relevant).sum(dim=1)


@torch.no_grad()
def retrieval_recalls(emb: CaptionEmbeddings, head: SimilarityHead | None = None, ks=(1, 5, 10),
                      device: str | torch.device = "cpu") -> dict[str, float]:
    """``i2t_r<k>``, ``t2i_r<k>`` (in %) and ``rsum`` (their sum) for vanilla cosine or ``head`` (given the
    embeddings it takes: unit or raw); each recall with its 95% bootstrap interval over the queries
    (``<recall>_ci_low`` / ``_ci_high``)."""
    img, txt = (t.to(device) for t in emb.inputs(head.input_space if head is not None else "unit"))
    if head is None:
        sim = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
    else:
        head = head.to(device).eval()
        sim = head.similarity_matrix(img, txt)
    sim = sim.float().cpu()  # (images, captions)
    rel = emb.caption_set.relevance()  # (captions, images)
    out, intervals = {}, {}
    for name, s, r in (("i2t", sim, rel.T), ("t2i", sim.T, rel)):
        if not r.any(dim=1).all():
            raise ValueError("every query needs at least one relevant gallery item")
        rank = _query_ranks(s, r)
        for k in ks:
            hits = (rank <= k).double()
            out[f"{name}_r{k}"] = 100 * float(hits.float().mean())
            low, high = bootstrap_ci(hits)
            intervals.update({f"{name}_r{k}_ci_low": 100 * low, f"{name}_r{k}_ci_high": 100 * high})
    out["rsum"] = sum(out.values())
    return out | intervals


def _authors_arrays(emb: CaptionEmbeddings) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Their ``get_image_and_text_tensor``: per image, its captions in reverse order with the image repeated;
    the first image's block twice. Returns (image rows, caption rows, captions per image)."""
    image, text = emb.inputs("raw")
    owner = emb.caption_set.caption_image.tolist()
    per_image: dict[int, list[int]] = {}
    for j, i in enumerate(owner):
        per_image.setdefault(i, []).insert(0, j)  # they prepend each new caption
    counts = {len(v) for v in per_image.values()}
    if len(counts) != 1:
        raise ValueError(f"{emb.caption_set.name}: the authors' evaluation needs the same number of captions for "
                         f"every image, got {sorted(counts)}")
    order = list(per_image)
    blocks = [order[0], *order]  # the defect: the first image's block is added twice
    rows = [j for i in blocks for j in per_image[i]]
    return image[[owner[j] for j in rows]], text[rows], counts.pop()


def _ranks_of(d: np.ndarray) -> np.ndarray:
    """Their ``numpy.argsort(d)[::-1]``: position of each column in the descending order, numpy's ties."""
    return np.argsort(np.argsort(d)[::-1])


@torch.no_grad()
def authors_coco_recalls(emb: CaptionEmbeddings, head: SimilarityHead | None = None,
                         device: str | torch.device = "cpu") -> dict[str, float]:
    """``i2t_r<k>`` / ``t2i_r<k>`` (k = 1, 5, 10, in %) and ``rsum`` as FG-CLIP's ``src/metrics.py`` computes them
    on raw embeddings: vanilla (``head`` None) with its per-dimension normalisation, or ``head``'s scores; the
    module docstring lists what differs from the standard measure. Each recall comes with its 95% bootstrap
    interval over their queries (``<recall>_ci_low`` / ``_ci_high``)."""
    images, captions, k = _authors_arrays(emb)
    n_blocks = len(images) // k  # their npts: one more than the images, the first counted twice
    ims = images[::k]
    if head is None:
        caps = captions.double().numpy().astype(np.float32)
        ims_np = ims.double().numpy().astype(np.float32)
        i2t_scores = np.sign(ims_np) @ (caps / np.linalg.norm(caps, axis=0)).T  # im / norm(im, axis=0) = sign
        ims_normed = ims_np / np.linalg.norm(ims_np, axis=0)
        t2i_scores = np.concatenate([
            (q / np.linalg.norm(q, axis=0)) @ ims_normed.T for q in np.split(caps, n_blocks)])
    else:
        head = head.to(device).eval()
        scores = head.similarity_matrix(ims.to(device), captions.to(device)).float().cpu().numpy()
        i2t_scores, t2i_scores = scores, scores.T
    i2t = np.array([min(_ranks_of(i2t_scores[b].astype(np.float32))[k * b:k * b + k]) for b in range(n_blocks)])
    t2i = np.array([_ranks_of(t2i_scores[q].astype(np.float32))[q // k] for q in range(n_blocks * k)])
    out, intervals = {}, {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for cut in (1, 5, 10):
            hits = ranks < cut
            out[f"{name}_r{cut}"] = 100.0 * float(hits.mean())
            low, high = bootstrap_ci(torch.as_tensor(hits, dtype=torch.float64))
            intervals.update({f"{name}_r{cut}_ci_low": 100 * low, f"{name}_r{cut}_ci_high": 100 * high})
    out["rsum"] = sum(out.values())
    return out | intervals
