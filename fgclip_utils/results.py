"""Result tables the notebooks compute, stored in the cache so figures can be redrawn without recomputing."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from .fgovd import SPLITS
from .io import atomic_write_bytes, cache_root


def results_dir() -> Path:
    path = cache_root() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def table_path(name: str, profile: str) -> Path:
    return results_dir() / f"{name}_{profile}.csv"


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
