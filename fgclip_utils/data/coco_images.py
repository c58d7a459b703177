"""COCO images a split references: a persistent, verified local cache, and object crops."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..cache import cache_folder
from .download import download_many
from .fgovd import Split


def is_valid_image(path: str | os.PathLike) -> bool:
    """True when the file fully decodes as an image (a truncated JPEG/PNG does not)."""
    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return True


def image_path(image_root: str | os.PathLike, record: dict) -> Path:
    """Where an image record (``file_name`` like ``val2017/000000239627.jpg``) lives under ``image_root``."""
    rel = Path(record["file_name"])
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"image {record.get('id')}: field 'file_name' {record['file_name']!r} must be relative")
    return Path(image_root) / rel


def default_image_root() -> Path:
    return cache_folder("coco")


@dataclass
class FetchReport:
    """Which of a split's images are on disk and which could not be fetched (by image id)."""

    available: dict[int, Path] = field(default_factory=dict)
    missing: dict[int, str] = field(default_factory=dict)


def fetch_images(split: Split, image_root: str | os.PathLike | None = None, *, workers: int = 8,
                 **download_kwargs) -> FetchReport:
    """Make every image ``split`` references available under ``image_root``, downloading by ``coco_url``.

    Files already present and decodable are not fetched again; a file that does not decode is fetched
    anew. Failures are collected, not raised: the evaluation reports those images as missing.
    """
    return fetch_records(split.images, image_root, workers=workers, desc=f"images {split.name}", **download_kwargs)


def fetch_records(records: dict[int, dict], image_root: str | os.PathLike | None = None, *, workers: int = 8,
                  desc: str = "images", **download_kwargs) -> FetchReport:
    """:func:`fetch_images` for any ``id -> {file_name, coco_url}`` records (e.g. a caption set's images)."""
    root = Path(image_root) if image_root else default_image_root()
    report = FetchReport()
    todo = []
    for image_id, rec in records.items():
        dest = image_path(root, rec)
        if dest.exists() and is_valid_image(dest):
            report.available[image_id] = dest
        elif not rec.get("coco_url"):
            report.missing[image_id] = f"{dest} not found and the record has no 'coco_url'"
        else:
            todo.append((image_id, rec["coco_url"], dest))
    result = download_many([(u, d) for _, u, d in todo], validate=is_valid_image, workers=workers, desc=desc,
                           **download_kwargs)
    for image_id, url, dest in todo:
        if url in result.failed:
            report.missing[image_id] = result.failed[url]
        else:
            report.available[image_id] = dest
    return report


def crop_box(bbox: tuple[float, float, float, float], scale_factor: float, width: int, height: int
             ) -> tuple[int, int, int, int]:
    """Pixel box (left, upper, right, lower) of ``bbox`` enlarged by ``scale_factor`` around its centre.

    The box is clipped to the image and always at least one pixel wide and high.
    """
    if scale_factor <= 0:
        raise ValueError(f"scale_factor must be positive, got {scale_factor}")
    x, y, w, h = bbox
    cx, cy = x + w / 2, y + h / 2
    hw, hh = w * scale_factor / 2, h * scale_factor / 2
    left = int(max(0, min(width - 1, round(cx - hw))))
    upper = int(max(0, min(height - 1, round(cy - hh))))
    right = int(min(width, max(left + 1, round(cx + hw))))
    lower = int(min(height, max(upper + 1, round(cy + hh))))
    return left, upper, right, lower


def crop(image: Image.Image, bbox: tuple[float, float, float, float], scale_factor: float = 1.0) -> Image.Image:
    """The object crop of ``bbox`` (x, y, w, h) in ``image``, enlarged by ``scale_factor``, as RGB."""
    return image.crop(crop_box(bbox, scale_factor, *image.size)).convert("RGB")
