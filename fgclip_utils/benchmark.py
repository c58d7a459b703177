"""The benchmark a profile evaluates on: split files, image root and which images are on disk.

``smoke`` renders the synthetic benchmark into the cache; ``full`` downloads the FG-OVD split files and
the COCO images they reference (only those) into the cache.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import synth
from .fgovd import SPLITS, Split, download_split, load_split
from .images import default_image_root, fetch_records
from .io import cache_root
from .profiles import Profile


@dataclass
class Benchmark:
    splits: dict[str, Split]
    image_root: Path
    available: dict[str, set[int]]  # split -> image ids on disk
    missing: dict[str, dict[int, str]] = field(default_factory=dict)  # split -> image id -> reason
    synthetic: bool = False


def synthetic_benchmark(n_objects: int, seed: int, subset: str = "test",
                        cache_dir: str | os.PathLike | None = None) -> Benchmark:
    root = Path(cache_dir) if cache_dir else cache_root() / "synthetic"
    out = root / f"{subset}-n{n_objects}-seed{seed}"
    paths = synth.make_benchmark(out, n_objects=n_objects, seed=seed)
    splits = {name: load_split(p, name) for name, p in paths.items()}
    ids = {name: set(s.images) for name, s in splits.items()}
    return Benchmark(splits=splits, image_root=synth.image_root(out), available=ids, synthetic=True)


def fgovd_benchmark(subset: str = "test", splits=None, image_root: str | os.PathLike | None = None,
                    workers: int = 16) -> Benchmark:
    """FG-OVD ``subset`` splits with their images. The splits share most images, so the union is fetched
    (and each cached file verified) once."""
    image_root = Path(image_root) if image_root else default_image_root()
    loaded = {name: load_split(download_split(name, subset), name) for name in splits or SPLITS}
    records = {i: rec for split in loaded.values() for i, rec in split.images.items()}
    report = fetch_records(records, image_root, workers=workers, desc=f"COCO images ({subset})")
    available = {name: set(s.images) & set(report.available) for name, s in loaded.items()}
    missing = {name: {i: report.missing[i] for i in s.images if i in report.missing} for name, s in loaded.items()}
    return Benchmark(splits=loaded, image_root=image_root, available=available, missing=missing)


# seeds of the synthetic subsets: test, train and validation never share a scene
SYNTH_SEEDS = {"test": 0, "train": 1, "val": 2}


def load_benchmark(profile: Profile, subset: str = "test") -> Benchmark:
    """The benchmark of ``profile`` for ``subset`` (``test``, ``train`` or ``val``)."""
    if profile.synthetic:
        n = profile.n_objects if subset != "train" else profile.n_train_objects
        return synthetic_benchmark(n, SYNTH_SEEDS[subset], subset)
    return fgovd_benchmark(subset, workers=profile.image_workers)
