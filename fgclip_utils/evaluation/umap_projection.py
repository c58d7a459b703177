"""2-D UMAP coordinates of embedding spaces (what notebook 03 draws, coloured by attribute value)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def umap_2d(x: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """2-D UMAP (cosine metric, seeded, single-threaded so it is reproducible)."""
    import umap  # slow import (numba): only when a projection is asked for

    n_neighbors = max(2, min(n_neighbors, len(x) - 1))
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", random_state=seed, n_jobs=1)
    return reducer.fit_transform(np.asarray(x, dtype=np.float32))


def umap_table(spaces: dict[tuple[str, str], np.ndarray], labels: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """Long table of 2-D coordinates: one row per (stage, modality, annotation) with its labels."""
    parts = []
    for (stage, modality), x in spaces.items():
        xy = umap_2d(x, **kwargs).astype(np.float64)  # float64 round-trips exactly through the CSV cache
        parts.append(labels.assign(stage=stage, modality=modality, x=xy[:, 0], y=xy[:, 1]))
    return pd.concat(parts, ignore_index=True)
