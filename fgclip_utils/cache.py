"""Where the study keeps what it downloads and computes: the cache root, the one table of its folders, and the
figures folder.

Everything lives under ``$FGCLIP_CACHE`` (default ``~/.cache/fgclip``), one folder per kind of content. This
table is the only place that names those folders; the README's cache table is checked against it.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

CACHE_ENV = "FGCLIP_CACHE"
FIGURES_ENV = "FGCLIP_FIGURES"
IMAGES_ENV = "FGCLIP_IMAGES"  # COCO images elsewhere than <cache>/coco (Colab: the local disk, the rest on Drive)
WEIGHTS_ENV = "FGCLIP_WEIGHTS"  # model weights (open_clip and Hugging Face downloads) kept there, e.g. on Drive

CACHE_FOLDERS: dict[str, str] = {
    "fgovd": "FG-OVD split files (`benchmarks/`, `training_sets/`, `validation_sets/`)",
    "coco": "COCO images, as `val2017/…`, `train2017/…`, `val2014/…`",
    "coco_captions": "Karpathy caption splits",
    "fgclip_checkpoints": "the FG-CLIP authors' released heads",
    "synthetic": "the synthetic benchmark (`test`, `train`, `val`, one seed each)",
    "embeddings": "crop and caption embeddings, one file per model, weights, precision, split file content, scale "
                  "factor and set of available images; `crops-*.npy` while an extraction runs",
    "detectors": "detector predictions per split (`<detector>_<split>_<key>.pt`) and the smoke profile's tiny "
                 "random-init detectors (`tiny/`); hub weights stay in the Hugging Face cache",
    "checkpoints": "best state dict of every head notebook 02 trained, per profile and backbone",
    "results": "the tables behind every figure",
}


class CacheRootError(OSError):
    """``$FGCLIP_CACHE`` names no folder the study can use; the message says which and why."""


def cache_root() -> Path:
    """Folder for every cache of the study: ``$FGCLIP_CACHE`` or ``~/.cache/fgclip``, made if absent; a file,
    an unknown ``~user`` or a folder this process cannot write to is a :class:`CacheRootError`."""
    root = os.environ.get(CACHE_ENV)
    try:
        path = Path(root).expanduser() if root else Path.home() / ".cache" / "fgclip"
    except RuntimeError as exc:  # "~nouser/x": Python cannot find that home folder
        raise CacheRootError(errno.ENOENT, f"${CACHE_ENV}={root!r}: no such user's home folder") from exc
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise CacheRootError(errno.ENOTDIR, f"${CACHE_ENV}={root!r}: {path} is a file, not a folder") from exc
    except PermissionError as exc:
        raise CacheRootError(errno.EACCES, f"${CACHE_ENV}={root!r}: {path} cannot be made ({exc.strerror})") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheRootError(errno.EACCES, f"${CACHE_ENV}={root!r}: {path} is not writable")
    return path


def cache_folder(folder: str) -> Path:
    """The cache folder ``folder`` (one of :data:`CACHE_FOLDERS`) under :func:`cache_root`; not created here."""
    if folder not in CACHE_FOLDERS:
        raise KeyError(f"unknown cache folder {folder!r}; expected one of {sorted(CACHE_FOLDERS)}")
    return cache_root() / folder


def images_dir() -> Path:
    """Where COCO images are kept: ``$FGCLIP_IMAGES``, else ``<cache root>/coco``."""
    env = os.environ.get(IMAGES_ENV)
    return Path(env).expanduser() if env else cache_folder("coco")


def weights_dir() -> str | None:
    """Where downloaded model weights go: ``$FGCLIP_WEIGHTS``, else None (the libraries' own caches)."""
    return os.environ.get(WEIGHTS_ENV) or None


class InsufficientSpace(OSError):
    """What is about to be downloaded will not fit on the disk that would hold it; nothing was downloaded."""


SPACE_MARGIN_BYTES = 2 * 10 ** 9  # left free for the embeddings, checkpoints and the system


def require_space(need_bytes: float, root: str | os.PathLike, what: str, advice: str, desc: str = "") -> None:
    """Say what will be downloaded (``what``, about ``need_bytes``) into ``root`` and how much room is free there
    (after ``desc``, the step's name);
    :class:`InsufficientSpace` naming ``advice`` (the settings that make it fit), before any download, when it
    would not fit with :data:`SPACE_MARGIN_BYTES` to spare."""
    root = Path(root)
    probe = next(p for p in (root, *root.parents) if p.exists())
    free = shutil.disk_usage(probe).free
    print(f"{desc + ': ' if desc else ''}fetching {what} (about {need_bytes / 1e9:.1f} GB) into {root}; "
          f"{free / 1e9:.1f} GB free")
    if need_bytes + SPACE_MARGIN_BYTES > free:
        raise InsufficientSpace(errno.ENOSPC, f"{what} need about {need_bytes / 1e9:.1f} GB (and "
                                f"{SPACE_MARGIN_BYTES / 1e9:.0f} GB to spare) where {root} has {free / 1e9:.1f} GB "
                                f"free: {advice}")


def figures_dir() -> Path:
    """``$FGCLIP_FIGURES``, else the repository's ``figures/`` (found from this package), else ``./figures``."""
    env = os.environ.get(FIGURES_ENV)
    if env:
        path = Path(env)
    else:
        repo = Path(__file__).resolve().parents[1]
        path = repo / "figures" if (repo / "pyproject.toml").exists() else Path.cwd() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path
