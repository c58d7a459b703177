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

from .cache import CACHE_ENV, FIGURES_ENV, IMAGES_ENV, WEIGHTS_ENV, cache_folder, cache_root, figures_dir

DRIVE_MOUNT = "/content/drive"


def in_colab() -> bool:
    return "google.colab" in sys.modules


LOCAL_IMAGES = "/content/fgclip-images"  # the runtime's local disk: large, fast, gone with the runtime


def use_drive_cache(enabled: bool = True, folder: str = "MyDrive/fgclip", images_on_drive: bool = False
                    ) -> Path | None:
    """In Colab, mount Google Drive and keep there, in ``<Drive>/<folder>``, what is expensive to remake and small:
    embeddings, checkpoints, result tables, records, figures and the model weights. COCO images (tens of GB in
    ``full``, and folders of thousands of files, which Drive handles badly) stay on the runtime's local disk
    unless ``images_on_drive``. Elsewhere, or when ``enabled`` is False, change nothing. Returns the cache root
    on Drive, or None."""
    if not enabled or not in_colab():
        return None
    from google.colab import drive  # only in Colab

    drive.mount(DRIVE_MOUNT)
    return apply_storage_plan(Path(DRIVE_MOUNT) / folder, images_on_drive)


def apply_storage_plan(root: Path, images_on_drive: bool = False, local_images: str = LOCAL_IMAGES) -> Path:
    """Point the caches, figures and model weights at ``root`` and the COCO images at ``local_images`` (or
    under ``root`` with ``images_on_drive``); print where each goes."""
    os.environ[CACHE_ENV] = str(root / "cache")
    os.environ[FIGURES_ENV] = str(root / "figures")
    os.environ[WEIGHTS_ENV] = str(root / "weights")
    os.environ[IMAGES_ENV] = str(root / "cache" / "coco") if images_on_drive else local_images
    print(f"on Drive: caches, checkpoints and results in {root / 'cache'}, figures in {root / 'figures'}, model "
          f"weights in {root / 'weights'}; COCO images in {os.environ[IMAGES_ENV]}"
          + ("" if images_on_drive else " (local disk: fetched again by a new runtime)"))
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
