"""How separable an attribute is in an embedding space: held-out kNN and linear-probe accuracy, silhouette.

Numbers back the UMAP pictures: a class structure that UMAP shows should also be recoverable by a kNN or
a linear probe on a held-out part, and the silhouette says how compact the classes are (cosine distance).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from ..extraction.embedding_cache import SplitEmbeddings


def separability(x: np.ndarray, labels, *, test_size: float = 0.3, k: int = 5, min_count: int = 4,
                 seed: int = 0) -> dict:
    """kNN and linear-probe accuracy on a stratified held-out part, majority baseline, silhouette.

    Rows with a missing label, and classes with fewer than ``min_count`` rows, are left out.
    """
    labels = pd.Series(list(labels))
    keep = labels.notna().to_numpy()
    counts = labels[keep].value_counts()
    keep = keep & labels.isin(counts[counts >= min_count].index).to_numpy()
    x, y = np.asarray(x, dtype=np.float32)[keep], labels[keep].to_numpy()
    n_classes = len(set(y))
    out = {"n": int(len(y)), "classes": n_classes}
    if n_classes < 2:
        return out | {"knn_acc": np.nan, "probe_acc": np.nan, "majority": np.nan, "silhouette": np.nan}
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    knn = KNeighborsClassifier(n_neighbors=min(k, len(y_tr)), metric="cosine").fit(x_tr, y_tr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = LogisticRegression(max_iter=2000, C=10.0).fit(x_tr, y_tr)
    majority = pd.Series(y_tr).value_counts().index[0]
    return out | {"knn_acc": float(knn.score(x_te, y_te)), "probe_acc": float(probe.score(x_te, y_te)),
                  "majority": float(np.mean(y_te == majority)),
                  "silhouette": float(silhouette_score(x, y, metric="cosine"))}


def separability_table(spaces: dict[tuple[str, str], np.ndarray], labels: pd.DataFrame, attributes, **kwargs
                       ) -> pd.DataFrame:
    """One row per (stage, modality, attribute) of ``spaces[(stage, modality)]`` with :func:`separability`."""
    rows = []
    for (stage, modality), x in spaces.items():
        for attr in attributes:
            rows.append({"stage": stage, "modality": modality, "attribute": attr,
                         **separability(x, labels[attr], **kwargs)})
    return pd.DataFrame(rows)


@torch.no_grad()
def embedding_spaces(emb: SplitEmbeddings, rows, head) -> dict[tuple[str, str], np.ndarray]:
    """The crop (``image``) and positive-caption (``text``) embeddings of ``rows``, as CLIP made them
    (``before``, L2-normalised) and as ``head`` maps them (``after``, from the embeddings it takes); ``head``
    must be a projection head."""
    if not hasattr(head, "embed_image"):
        raise TypeError(f"{type(head).__name__} is not a projection head: it has no embedding space to show")
    idx = torch.as_tensor(rows)
    head = head.cpu()
    image, text = emb.image[idx], emb.text[emb.positive[idx]]
    head_image, head_text = emb.inputs(head.input_space)
    return {("before", "image"): image.numpy(), ("after", "image"): head.embed_image(head_image[idx]).numpy(),
            ("before", "text"): text.numpy(),
            ("after", "text"): head.embed_text(head_text[emb.positive[idx]]).numpy()}
