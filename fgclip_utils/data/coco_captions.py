"""Captioned images for coarse-grained retrieval: COCO Karpathy splits, and the synthetic benchmark's scenes.

``full`` uses the COCO Karpathy 5k test split (images from COCO val2014, 5 captions each); ``smoke`` uses
captions of the synthetic benchmark's scenes that name only each object's colour and shape.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic_io import atomic_path
from ..profiles import Profile
from .assets import asset, coco_image_url
from .benchmark_data import Benchmark
from .coco_images import default_image_root, fetch_records
from .download import download_file


@dataclass
class CaptionSet:
    """Images with their captions; ``caption_image[j]`` is the image index of caption j."""

    name: str
    images: list[dict]  # {"file_name", "coco_url"?}
    captions: list[str]
    caption_image: torch.Tensor

    def relevance(self) -> torch.Tensor:
        """(captions, images) boolean mask of which image each caption describes."""
        mask = torch.zeros(len(self.captions), len(self.images), dtype=torch.bool)
        mask[torch.arange(len(self.captions)), self.caption_image] = True
        return mask


def load_karpathy(path: str | os.PathLike, split: str = "test", limit: int | None = None) -> CaptionSet:
    """Parse Karpathy's ``dataset_coco.json``; ``ValueError`` names the file and field when malformed."""
    path = Path(path)
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: expected an object with an 'images' list")
    images, captions, owner = [], [], []
    for i, rec in enumerate(data["images"]):
        for key in ("filepath", "filename", "split", "sentences"):
            if key not in rec:
                raise ValueError(f"{path}: images[{i}]: missing field '{key}'")
        if rec["split"] != split:
            continue
        file_name = f"{rec['filepath']}/{rec['filename']}"
        images.append({"file_name": file_name, "coco_url": coco_image_url(rec["filepath"], rec["filename"])})
        for s in rec["sentences"][:5]:
            captions.append(s["raw"].strip())
            owner.append(len(images) - 1)
        if limit and len(images) >= limit:
            break
    if not images:
        raise ValueError(f"{path}: no image has split {split!r}")
    return CaptionSet(f"coco-karpathy-{split}", images, captions, torch.tensor(owner))


def download_karpathy(cache_dir: str | os.PathLike | None = None, url: str | None = None) -> Path:
    """Fetch Karpathy's caption archive (once) and extract ``dataset_coco.json`` atomically."""
    entry = asset("karpathy/caption_datasets.zip")
    archive_path = entry.local_path(cache_dir)
    json_path = archive_path.parent / "dataset_coco.json"
    if json_path.exists():
        return json_path
    archive = download_file(url or entry.url, archive_path, validate=zipfile.is_zipfile)
    with zipfile.ZipFile(archive) as zf, atomic_path(json_path) as tmp:
        member = next((n for n in zf.namelist() if n.endswith("dataset_coco.json")), None)
        if member is None:
            raise ValueError(f"{archive}: no dataset_coco.json inside")
        tmp.write_bytes(zf.read(member))
    return json_path


def synthetic_caption_set(bench: Benchmark, split: str = "hard") -> CaptionSet:
    """Each synthetic scene with two coarse captions: its objects' colour and shape, in two orders."""
    s = bench.splits[split]
    objects: dict[int, list[str]] = {}
    for ann in s.annotations:
        objects.setdefault(ann.image_id, []).append(f"a {ann.attributes['color']} {ann.attributes['shape']}")
    images, captions, owner = [], [], []
    for image_id, objs in sorted(objects.items()):
        images.append(dict(s.images[image_id]))
        for order in (objs, objs[::-1]):
            captions.append("a picture of " + " and ".join(order))
            owner.append(len(images) - 1)
    return CaptionSet("synthetic-scenes", images, captions, torch.tensor(owner))


def coarse_caption_set(profile: Profile, bench: Benchmark, subset: str = "test") -> tuple[CaptionSet, Path]:
    """Captioned images for coarse-grained retention and their image root: COCO Karpathy ``subset`` in
    ``full`` (5k test images; ``train`` for the optional training term), the synthetic scenes of ``bench``
    in ``smoke``."""
    if profile.data.synthetic:
        return synthetic_caption_set(bench), bench.image_root
    limit = profile.data.coco_limit if subset == "test" else profile.data.coco_train_limit
    cs = load_karpathy(download_karpathy(), subset, limit=limit)
    root = default_image_root()
    report = fetch_records(dict(enumerate(cs.images)), root, workers=profile.data.image_workers, desc=cs.name)
    if report.missing:
        raise RuntimeError(f"{len(report.missing)} COCO caption images could not be fetched, e.g. "
                           f"{next(iter(report.missing.values()))}")
    return cs, root
