"""Numbers other papers report, kept as data files with their source (never estimated here)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .fgovd import SPLITS

REPORTED_DETECTORS_CSV = Path(__file__).parent / "reported" / "fgovd_detectors.csv"
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
