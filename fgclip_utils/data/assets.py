"""Every external file the study downloads, in one table: the only place a URL appears in the package.

An :class:`Asset` names its source and its path there (the key, e.g. ``"fgovd/benchmarks/1_attributes.json"``),
its URL, and where it lives in the cache (a folder of :data:`fgclip_utils.cache.CACHE_FOLDERS` and a path in
it). COCO images are not listed one by one: their URLs come from the split files (``coco_url``) or from
:data:`COCO_IMAGE_URL` for the Karpathy caption splits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..cache import cache_folder
from .fgovd import SPLITS

FGOVD_URL_ENV = "FGCLIP_FGOVD_URL"  # base URL of an FG-OVD mirror (tests use a local server)
FGOVD_RAW_URL = "https://raw.githubusercontent.com/lorebianchi98/FG-OVD/main"
FGCLIP_RAW_URL = "https://github.com/lorebianchi98/FG-CLIP/raw/main"
KARPATHY_ZIP_URL = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"
COCO_IMAGE_URL = "http://images.cocodataset.org/{folder}/{file_name}"

# the FG-OVD repository folder of each subset
FGOVD_SUBSETS = {"test": "benchmarks", "train": "training_sets", "val": "validation_sets"}
FGCLIP_CHECKPOINT_FILES = ("fg-ovd_linear-mlp.pt", "fg-ovd_linear-mlp_te-freezed.pt",
                           "fg-ovd_linear-mlp_ve-freezed.pt", "triplet_linear-mlp.pt",
                           "triplet_linear-mlp_te-freezed.pt", "triplet_linear-mlp_ve-freezed.pt")


@dataclass(frozen=True)
class Asset:
    key: str  # "<source>/<path in its repository>"
    url: str
    folder: str  # cache folder
    path: str  # path inside the cache folder

    def local_path(self, folder: str | os.PathLike | None = None) -> Path:
        """Where the file is kept: ``folder`` (default: the asset's cache folder) / its path."""
        return (Path(folder) if folder else cache_folder(self.folder)) / self.path


def _fgovd(subset_folder: str, file_name: str) -> Asset:
    path = f"{subset_folder}/{file_name}"
    return Asset(f"fgovd/{path}", f"{FGOVD_RAW_URL}/{path}", "fgovd", path)


def _fgclip(file_name: str) -> Asset:
    path = f"checkpoints/{file_name}"
    return Asset(f"fgclip/{path}", f"{FGCLIP_RAW_URL}/{path}", "fgclip_checkpoints", file_name)


ASSETS: dict[str, Asset] = {
    **{a.key: a for a in (_fgovd(folder, s.file_name) for folder in FGOVD_SUBSETS.values() for s in SPLITS.values())},
    **{a.key: a for a in map(_fgclip, FGCLIP_CHECKPOINT_FILES)},
    "karpathy/caption_datasets.zip": Asset("karpathy/caption_datasets.zip", KARPATHY_ZIP_URL, "coco_captions",
                                           "caption_datasets.zip"),
}


def asset(key: str) -> Asset:
    if key not in ASSETS:
        raise KeyError(f"unknown asset {key!r}; e.g. {sorted(ASSETS)[:3]}")
    return ASSETS[key]


def fgovd_asset(file_name: str, subset: str = "test") -> Asset:
    """The FG-OVD split file ``file_name`` of ``subset`` (test, train or val)."""
    if subset not in FGOVD_SUBSETS:
        raise KeyError(f"unknown subset {subset!r}; expected one of {sorted(FGOVD_SUBSETS)}")
    return asset(f"fgovd/{FGOVD_SUBSETS[subset]}/{file_name}")


def fgovd_url(entry: Asset, base_url: str | None = None) -> str:
    """The URL of an FG-OVD asset, from ``base_url`` or ``$FGCLIP_FGOVD_URL`` when a mirror is given."""
    base = base_url or os.environ.get(FGOVD_URL_ENV)
    return f"{base.rstrip('/')}/{entry.path}" if base else entry.url


def coco_image_url(folder: str, file_name: str) -> str:
    """The URL of one COCO image (``folder`` like ``val2014``)."""
    return COCO_IMAGE_URL.format(folder=folder, file_name=file_name)
