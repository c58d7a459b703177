"""The benchmark a profile evaluates on: split files, image root and which images are on disk.

``smoke`` renders the synthetic benchmark into the cache; ``full`` downloads the FG-OVD split files and
the COCO images they reference (only those) into the cache.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..cache import cache_folder
from ..profiles import Profile
from . import synthetic
from .assets import fgovd_asset
from .coco_images import default_image_root, fetch_records, image_path
from .download import DownloadError, fetch_asset, mirrored
from .fgovd import SPLITS, Split, load_split


@dataclass
class Benchmark:
    """Splits to evaluate on (``name -> Split``), where their images are, and which of them are on disk."""

    splits: dict[str, Split]
    image_root: Path
    available: dict[str, set[int]]  # split -> image ids on disk
    missing: dict[str, dict[int, str]] = field(default_factory=dict)  # split -> image id -> reason
    synthetic: bool = False

    @classmethod
    def of(cls, splits, image_root: str | os.PathLike, available: dict[str, Iterable[int]] | None = None
           ) -> Benchmark:
        """A benchmark of loaded splits (a sequence or ``name -> Split``); ``available`` maps a split name to
        the image ids on disk (e.g. ``fetch_images(...).available``), by default every image of the split that
        exists under ``image_root``."""
        splits = dict(splits) if isinstance(splits, Mapping) else {s.name: s for s in splits}
        root = Path(image_root)
        given = available or {}
        return cls(splits, root, {name: set(given[name]) if name in given else
                                  {i for i, rec in s.images.items() if image_path(root, rec).exists()}
                                  for name, s in splits.items()})


def split_url(split: str, subset: str = "test") -> str:
    """URL of a split file in the FG-OVD repository at the pinned commit (through ``$FGCLIP_MIRROR`` if set)."""
    if split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    return mirrored(fgovd_asset(SPLITS[split].file_name, subset).url)


def _parses(path: Path) -> bool:
    try:
        load_split(path)
    except (ValueError, OSError) as exc:
        raise DownloadError(f"not a valid split file: {exc}") from exc
    return True


def download_split(split: str, subset: str = "test", cache_dir: str | os.PathLike | None = None) -> Path:
    """Fetch one split file (once) into the cache and return its local path.

    The file is verified by its git blob id at the pinned FG-OVD commit, on download and on every reuse, and
    must parse; a file that fails either is never kept and never replaces a good cached copy.
    """
    if split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    return fetch_asset(fgovd_asset(SPLITS[split].file_name, subset), folder=cache_dir, validate=_parses)


def synthetic_benchmark(n_objects: int, seed: int, subset: str = "test",
                        cache_dir: str | os.PathLike | None = None) -> Benchmark:
    root = Path(cache_dir) if cache_dir else cache_folder("synthetic")
    out = root / f"{subset}-n{n_objects}-seed{seed}"
    paths = synthetic.make_benchmark(out, n_objects=n_objects, seed=seed)
    splits = {name: load_split(p, name) for name, p in paths.items()}
    ids = {name: set(s.images) for name, s in splits.items()}
    return Benchmark(splits=splits, image_root=synthetic.image_root(out), available=ids, synthetic=True)


def fgovd_benchmark(subset: str = "test", splits=None, image_root: str | os.PathLike | None = None,
                    workers: int = 16) -> Benchmark:
    """FG-OVD ``subset`` splits (default: all eight) with their images; only those splits and the images they
    reference are downloaded. The splits share most images, so the union is fetched (and each cached file
    verified) once."""
    image_root = Path(image_root) if image_root else default_image_root()
    loaded = {name: load_split(download_split(name, subset), name) for name in splits or SPLITS}
    records = {i: rec for split in loaded.values() for i, rec in split.images.items()}
    report = fetch_records(records, image_root, workers=workers, desc=f"COCO images ({subset})")
    available = {name: set(s.images) & set(report.available) for name, s in loaded.items()}
    missing = {name: {i: report.missing[i] for i in s.images if i in report.missing} for name, s in loaded.items()}
    return Benchmark(splits=loaded, image_root=image_root, available=available, missing=missing)


def benchmark_overview(bench: Benchmark) -> pd.DataFrame:
    """One row per split: its file, annotations, images, most negatives, and what cannot be ranked."""
    return pd.DataFrame([{
        "split": SPLITS[name].title if name in SPLITS else name, "file": split.path.name,
        "annotations": len(split), "images": len(split.images), "max negatives": split.max_negatives,
        "no negatives (skipped)": split.n_skipped, "images missing": len(bench.missing.get(name, {})),
    } for name, split in bench.splits.items()])


# seeds of the synthetic subsets: test, train and validation never share a scene
SYNTH_SEEDS = {"test": 0, "train": 1, "val": 2}


def load_benchmark(profile: Profile, subset: str = "test", splits=None) -> Benchmark:
    """The benchmark of ``profile`` for ``subset`` (``test``, ``train`` or ``val``): the splits named in
    ``splits`` (default: all eight) with their images."""
    data = profile.data
    if data.synthetic:
        n = data.n_objects if subset != "train" else data.n_train_objects
        bench = synthetic_benchmark(n, SYNTH_SEEDS[subset], subset)
        if splits is not None:
            keep = list(splits)
            bench.splits = {k: bench.splits[k] for k in keep}
            bench.available = {k: bench.available[k] for k in keep}
        return bench
    return fgovd_benchmark(subset, splits=splits, workers=data.image_workers)
