"""Result tables the notebooks compute, stored in the cache so figures can be redrawn without recomputing.

:data:`RESULT_TABLES` is the one place that names them; a table is saved as ``<name>_<profile>.csv`` in the
cache's ``results`` folder. Training histories are one table per trained head (:func:`history_table`).
"""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from .atomic_io import atomic_write_bytes
from .cache import cache_folder
from .data.fgovd import SPLITS

RESULT_TABLES: dict[str, str] = {
    "nb01_vanilla_clip": "vanilla CLIP per split and backbone (notebook 01)",
    "nb01_failures_hard": "Hard-split crops whose best negative beats the positive (notebook 01)",
    "nb02_heads": "vanilla CLIP and every head: accuracy per split and COCO recalls (notebook 02)",
    "nb02_history": "training history of one head, one table per kind and loss (notebook 02)",
    "nb03_separability": "separability of each attribute before and after the head (notebook 03)",
    "nb03_umap": "2-D UMAP coordinates with attribute labels (notebook 03)",
}


def history_table(kind: str, loss: str) -> str:
    """Name of the training-history table of head ``kind`` trained with ``loss``."""
    return f"nb02_history_{kind}_{loss}"


def _check_name(name: str) -> str:
    base = "nb02_history" if name.startswith("nb02_history_") else name
    if base not in RESULT_TABLES:
        raise KeyError(f"unknown result table {name!r}; expected one of {sorted(RESULT_TABLES)}")
    return name


def results_dir() -> Path:
    path = cache_folder("results")
    path.mkdir(parents=True, exist_ok=True)
    return path


def table_path(name: str, profile: str) -> Path:
    return results_dir() / f"{_check_name(name)}_{profile}.csv"


def save_table(table: pd.DataFrame, name: str, profile: str) -> Path:
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    return atomic_write_bytes(table_path(name, profile), buf.getvalue().encode())


def load_table(name: str, profile: str) -> pd.DataFrame:
    path = table_path(name, profile)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the notebook that makes '{name}' in profile '{profile}' first")
    return pd.read_csv(path)


def acc_columns(table: pd.DataFrame) -> list[str]:
    """The per-split accuracy columns (``acc_<split>``) of a results table, in the papers' split order."""
    return [f"acc_{s}" for s in SPLITS if f"acc_{s}" in table.columns]
