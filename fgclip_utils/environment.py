"""What a researcher checks first: library versions, the accelerator, and where (and how big) the caches are."""
from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from .cache import cache_root, figures_dir

PACKAGES = ("torch", "torchvision", "open_clip_torch", "numpy", "pandas", "matplotlib", "seaborn", "umap-learn",
            "scikit-learn", "ipywidgets", "nbval", "papermill")


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    """The installed version of each of ``names`` (None where it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment_report() -> dict:
    """Python, package versions and the accelerator; ``torchvision_ops`` is False when torch and torchvision
    do not match (the error open_clip then raises is ``operator torchvision::nms does not exist``)."""
    versions = package_versions()
    try:
        import torchvision.ops  # noqa: F401
        ops = bool(torch.ops.torchvision.nms)
    except (ImportError, RuntimeError, AttributeError):
        ops = False
    cuda = torch.cuda.is_available()
    return {"python": platform.python_version(), **versions, "torchvision_ops": ops, "cuda": cuda,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "bf16": bool(cuda and torch.cuda.is_bf16_supported())}


def environment_table() -> pd.DataFrame:
    """:func:`environment_report` as a one-column table (what notebook 00 shows)."""
    return pd.Series(environment_report(), name="value").to_frame()


def _files_and_bytes(path: Path) -> tuple[int, int]:
    sizes = [p.stat().st_size for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return len(sizes), sum(sizes)


def cache_usage() -> pd.DataFrame:
    """Each cache folder (and the figures folder) with its file count and size in MB."""
    root = cache_root()
    folders = {"cache root": root, **{p.name: p for p in sorted(root.iterdir()) if p.is_dir()},
               "figures": figures_dir()}
    rows = []
    for what, path in folders.items():
        files, size = _files_and_bytes(path)
        rows.append({"what": what, "path": str(path), "files": files, "MB": round(size / 2**20, 1)})
    return pd.DataFrame(rows)
