"""Numbers other papers report, kept as data files with their source (never estimated here)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .fgovd import SPLITS

REPORTED = Path(__file__).parent / "reported"
REPORTED_DETECTORS_CSV = REPORTED / "fgovd_detectors.csv"
PAPER_TABLES = {"A": REPORTED / "fgclip_table_a.csv", "B": REPORTED / "fgclip_table_b.csv"}
OPENCLIP_COCO_CSV = REPORTED / "openclip_coco_retrieval.csv"
PAPER_COLUMNS = ["method", "stage", "fg", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "source"]
PAPER_STAGES = ("vanilla", "warmup", "fg-ovd")
PAPER_METHODS = ("CLIP B/16", "linear", "linear-image", "linear-text", "mlp", "attention")
FGOVD_CITATION = ("Bianchi et al., The devil is in the fine-grained details: evaluating open-vocabulary "
                  "object detectors for fine-grained understanding, CVPR 2024, arXiv:2311.17518; detector mAP "
                  "per split as tabulated in github.com/lorebianchi98/FG-OVD, NoctOWL/README.md (commit 9f47181)")


def reported_detectors(path: str | Path = REPORTED_DETECTORS_CSV) -> pd.DataFrame:
    """Detector results reported by the FG-OVD authors (columns detector, split, metric, value, source).

    Raises ``ValueError`` naming the file, row and field for an unknown split or a non-numeric value.
    """
    table = pd.read_csv(path, comment="#")
    expected = ["detector", "split", "metric", "value", "source"]
    if list(table.columns) != expected:
        raise ValueError(f"{path}: columns must be {expected}, got {list(table.columns)}")
    for i, row in table.iterrows():
        if row["split"] not in SPLITS:
            raise ValueError(f"{path}: row {i}: field 'split' {row['split']!r} is not one of {list(SPLITS)}")
        if not isinstance(row["value"], (int, float)) or pd.isna(row["value"]):
            raise ValueError(f"{path}: row {i}: field 'value' {row['value']!r} is not a number")
    return table


def _read_numeric(path: Path, columns: list[str], text_columns: set[str]) -> pd.DataFrame:
    table = pd.read_csv(path, comment="#")
    if list(table.columns) != columns:
        raise ValueError(f"{path}: columns must be {columns}, got {list(table.columns)}")
    for i, row in table.iterrows():
        for col in columns:
            if col in text_columns:
                continue
            if not isinstance(row[col], int | float) or pd.isna(row[col]):
                raise ValueError(f"{path}: row {i}: field '{col}' {row[col]!r} is not a number")
    return table


def paper_results(table: str = "B") -> pd.DataFrame:
    """The paper's published results, ``table`` "A" (arXiv v1, ``fg`` = Mean Rank Sum over the 8 splits) or "B"
    (the CBMI version, ``fg`` = FG-OVD Mean Rank, the mean of the 8): one row per method and stage with columns
    ``method``, ``stage`` (vanilla, warmup, fg-ovd), ``fg``, ``i2t_r1`` … ``t2i_r10`` (COCO Karpathy 5k test, in %)
    and ``source``. Both are data files transcribed from the authors' repository, with their source."""
    if table not in PAPER_TABLES:
        raise ValueError(f"table must be 'A' or 'B', got {table!r}")
    path = PAPER_TABLES[table]
    frame = _read_numeric(path, PAPER_COLUMNS, {"method", "stage", "source"})
    for i, row in frame.iterrows():
        if row["stage"] not in PAPER_STAGES or row["method"] not in PAPER_METHODS:
            raise ValueError(f"{path}: row {i}: unknown method/stage {row['method']!r}/{row['stage']!r}")
    return frame


def openclip_coco_reference() -> pd.DataFrame:
    """open_clip's published COCO retrieval of some backbones (CLIP_benchmark), the sanity row of a correct
    vanilla baseline: ``model``, ``pretrained``, ``i2t_r1`` … ``t2i_r10`` (in %), ``source``."""
    cols = ["model", "pretrained", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "source"]
    return _read_numeric(OPENCLIP_COCO_CSV, cols, {"model", "pretrained", "source"})
