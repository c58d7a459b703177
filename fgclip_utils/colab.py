"""Colab conveniences: caches on Google Drive (so a run survives the runtime) and one archive of the outputs.

Each Colab notebook runs in a runtime of its own, and everything under ``/content`` is lost when it ends. With
:func:`use_drive_cache`, caches, checkpoints, result tables and figures live on Drive instead: notebook 03
then finds notebook 02's heads, and a second session reuses every download and embedding.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from .cache import CACHE_ENV, FIGURES_ENV, cache_folder, cache_root, figures_dir

DRIVE_MOUNT = "/content/drive"


def in_colab() -> bool:
    return "google.colab" in sys.modules


def use_drive_cache(enabled: bool = True, folder: str = "MyDrive/fgclip") -> Path | None:
    """In Colab, mount Google Drive and keep the cache and figures in ``<Drive>/<folder>``; elsewhere, or when
    ``enabled`` is False, change nothing. Returns the cache root on Drive, or None."""
    if not enabled or not in_colab():
        return None
    from google.colab import drive  # only in Colab

    drive.mount(DRIVE_MOUNT)
    root = Path(DRIVE_MOUNT) / folder
    os.environ[CACHE_ENV] = str(root / "cache")
    os.environ[FIGURES_ENV] = str(root / "figures")
    print(f"caches, checkpoints and results in {root / 'cache'}; figures in {root / 'figures'}")
    return cache_root()


def archive_outputs(dest: str | os.PathLike | None = None) -> Path:
    """A zip of the figures and the result tables and records (not the caches, which are large), in Colab
    offered for download; returns its path."""
    dest = Path(dest) if dest else Path(tempfile.gettempdir()) / "fgclip-outputs.zip"
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "fgclip-outputs"
        staging.mkdir()
        if figures_dir().exists():
            shutil.copytree(figures_dir(), staging / "figures")
        results = cache_folder("results")
        if results.exists():
            shutil.copytree(results, staging / "results")
        made = shutil.make_archive(str(dest.with_suffix("")), "zip", root_dir=tmp, base_dir="fgclip-outputs")
    if in_colab():
        from google.colab import files  # only in Colab

        files.download(made)
    return Path(made)
