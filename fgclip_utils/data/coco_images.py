"""COCO images a split references: a persistent, verified local cache, and object crops.

A cached image is used only if it decodes completely and its size is the one the split declares (``width`` x
``height``); otherwise it is fetched again. COCO 2014 and 2017 hold the same photos under other names (the
Karpathy lists name 2014 files, FG-OVD 2017 ones): a photo already on disk under one year's name is linked, not
fetched again, once a few have been fetched under both and found byte-identical. Crops follow the FG-OVD/FG-CLIP
authors' rule (:func:`crop_box`).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic_io import atomic_path, atomic_write_json, remove_stale_temporaries, sha256_file, sha256_json
from ..cache import images_dir, require_space
from .assets import COCO_IMAGE_DEADLINE, COCO_IMAGE_MAX_BYTES
from .download import DownloadError, download_many
from .fgovd import Split

# a decompression bomb (a tiny file claiming billions of pixels) is refused, never decoded; Pillow itself only
# warns up to twice its limit, so the study refuses above it (header_problem)
Image.MAX_IMAGE_PIXELS = 200_000_000


class ImageReadError(OSError):
    """An image file does not decode, or is not the image its split declares; the message names the file."""


def declared_size(record: dict) -> tuple[int, int] | None:
    """(width, height) that a split's image record declares, or None when it does not say."""
    w, h = record.get("width"), record.get("height")
    if isinstance(w, int | float) and isinstance(h, int | float):
        return int(w), int(h)
    return None


def header_problem(image: Image.Image, size: tuple[int, int] | None, whose: str = "the") -> str | None:
    """Why an opened (not yet decoded) image must not be decoded: more pixels than the cap, or another size than
    its split declares; read from the header, so a huge file is refused before it takes the memory."""
    (w, h), cap = image.size, Image.MAX_IMAGE_PIXELS
    if cap and w * h > cap:
        return f"is {w}x{h} pixels, above the {cap / 1e6:.0f}-Mpx limit"
    if size is not None and (w, h) != tuple(size):
        return f"is {w}x{h} pixels where {whose} split declares {size[0]}x{size[1]}"
    return None


def check_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> str | None:
    """Why the file at ``path`` is not a usable image of ``size`` (width, height), or None when it is: it
    must decode completely (a truncated JPEG/PNG does not) and, when ``size`` is given, have that size."""
    try:
        with Image.open(path) as im:
            problem = header_problem(im, size)
            if problem is None:
                im.load()
    except FileNotFoundError:
        return "not found"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"does not decode ({exc})"
    return problem


def is_valid_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> bool:
    """True when the file fully decodes as an image (of ``size``, when given)."""
    return check_image(path, size) is None


def image_path(image_root: str | os.PathLike, record: dict) -> Path:
    """Where an image record (``file_name`` like ``val2017/000000239627.jpg``) lives under ``image_root``."""
    rel = Path(record["file_name"])
    if rel.is_absolute() or ".." in rel.parts or not rel.name:
        raise ValueError(f"image {record.get('id')}: field 'file_name' {record['file_name']!r} must be a relative "
                         "path to a file")
    return Path(image_root) / rel


CONTENT_INDEX = ".fgclip-image-sha256.json"  # beside the images: file name -> [size, mtime_ns, sha256]


def image_fingerprint(image_root: str | os.PathLike, records: Iterable[dict]) -> str:
    """sha256 of each image's relative path, size and content: changes when any image file does, and survives a
    copy that gives the files new modification times (a Drive round trip, a moved cache). Each file's content
    hash is computed once and kept in ``<image_root>/.fgclip-image-sha256.json``, reused while the file's size
    and modification time are those it was computed at."""
    index_path = Path(image_root) / CONTENT_INDEX
    try:
        index = json.loads(index_path.read_text())
        index = index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        index = {}
    rows, changed = [], False
    for rec in records:
        name, path = rec["file_name"], image_path(image_root, rec)
        try:
            st = path.stat()
        except FileNotFoundError:
            rows.append((name, -1, ""))
            continue
        known = index.get(name)
        if not (isinstance(known, list) and known[:2] == [st.st_size, st.st_mtime_ns]):
            known = index[name] = [st.st_size, st.st_mtime_ns, sha256_file(path)]
            changed = True
        rows.append((name, st.st_size, known[2]))
    if changed:
        with contextlib.suppress(OSError):  # a read-only image folder: the hashes are computed again next time
            atomic_write_json(index_path, index)
    return sha256_json(sorted(rows))


def default_image_root() -> Path:
    """Where COCO images are fetched to (see :func:`~fgclip_utils.cache.images_dir`)."""
    return images_dir()


@dataclass
class FetchReport:
    """Which of a split's images are on disk and which could not be fetched (by image id)."""

    available: dict[int, Path] = field(default_factory=dict)
    missing: dict[int, str] = field(default_factory=dict)


def fetch_images(split: Split, image_root: str | os.PathLike | None = None, *, workers: int = 8,
                 **download_kwargs) -> FetchReport:
    """Make every image ``split`` references available under ``image_root``, downloading by ``coco_url``.

    Files already present, decodable and of the declared size are not fetched again; any other file is
    fetched anew. Failures are collected, not raised: the evaluation reports those images as missing.
    """
    return fetch_records(split.images, image_root, workers=workers, desc=f"images {split.name}", **download_kwargs)


def fetch_records(records: dict[int, dict], image_root: str | os.PathLike | None = None, *, workers: int = 8,
                  desc: str = "images", **download_kwargs) -> FetchReport:
    """:func:`fetch_images` for any ``id -> {file_name, coco_url, width?, height?}`` records (e.g. a caption
    set's images). A photo already under ``image_root`` by its other COCO year's name (:func:`same_photo`) is
    linked, not fetched, once :func:`same_photo_verdict` has found the two years' files byte-identical."""
    root = Path(image_root) if image_root else default_image_root()
    report = FetchReport()
    todo, twins = [], []
    for image_id, rec in records.items():
        dest = image_path(root, rec)
        size = declared_size(rec)
        problem = check_image(dest, size)
        if problem is None:
            report.available[image_id] = dest
        elif not rec.get("coco_url"):
            report.missing[image_id] = f"{dest} {problem} and the record has no 'coco_url' to fetch it from"
        else:
            twin = same_photo(root, rec["file_name"])
            item = (image_id, rec["coco_url"], dest, _image_validator(size))
            (twins if twin is not None and check_image(twin, size) is None else todo).append((*item, twin))
    verdict, sample = same_photo_verdict(root), []
    if twins and verdict is None:  # the first few are fetched under both names and compared
        sample, twins = twins[:SAME_PHOTO_SAMPLE], twins[SAME_PHOTO_SAMPLE:]
    elif verdict is False:
        todo, twins = todo + twins, []
    check_space(len(todo) + len(sample), root, desc, linked=len(twins))
    _download(todo + sample, report, workers, desc, download_kwargs)
    if sample:
        verdict = _compare_twins(root, [(d, t) for i, _, d, _, t in sample if i in report.available])
        if not verdict:
            check_space(len(twins), root, desc)
            _download(twins, report, workers, desc, download_kwargs)
            twins = []
    for image_id, _, dest, _, twin in twins:
        _link(twin, dest)
        report.available[image_id] = dest
    return report


def _download(todo: list[tuple], report: FetchReport, workers: int, desc: str, kwargs: dict) -> None:
    for folder in {item[2].parent for item in todo}:
        remove_stale_temporaries(folder)  # what killed runs left behind
    kwargs = {"max_bytes": COCO_IMAGE_MAX_BYTES, "deadline": COCO_IMAGE_DEADLINE, **kwargs}
    result = download_many([(u, d, v) for _, u, d, v, _ in todo], workers=workers, desc=desc, **kwargs)
    for image_id, url, dest, _, _ in todo:
        if url in result.failed:
            report.missing[image_id] = result.failed[url]
        else:
            report.available[image_id] = dest


# COCO 2017 re-split the photos of COCO 2014 under new names: one photo, one file name per year and folder
COCO_NAMES = {"train2014": "COCO_train2014_{:012d}.jpg", "val2014": "COCO_val2014_{:012d}.jpg",
              "train2017": "{:012d}.jpg", "val2017": "{:012d}.jpg"}
SAME_PHOTO_RECORD = ".fgclip-coco-2014-2017.json"  # beside the images: were the two years' files byte-identical?
SAME_PHOTO_SAMPLE = 3  # photos fetched under both names and compared before any other is linked


def same_photo(image_root: str | os.PathLike, file_name: str) -> Path | None:
    """The file of the same COCO photo under its other year's name (``val2017/000000000139.jpg`` <->
    ``val2014/COCO_val2014_000000000139.jpg`` or ``train2014/...``) already under ``image_root``, or None."""
    rel = Path(file_name)
    match = re.fullmatch(r"(?:COCO_(?:train|val)2014_)?(\d{12})\.jpg", rel.name)
    if match is None or len(rel.parts) != 2 or rel.parts[0] not in COCO_NAMES:
        return None
    for folder, name in COCO_NAMES.items():
        twin = Path(image_root) / folder / name.format(int(match.group(1)))
        if folder[-4:] != rel.parts[0][-4:] and twin.is_file():
            return twin
    return None


def same_photo_verdict(image_root: str | os.PathLike) -> bool | None:
    """Whether this image folder found a photo's COCO 2014 and 2017 files byte-identical (True: its other photos
    are linked, not fetched twice), not (False: each name is fetched), or has not compared any yet (None)."""
    try:
        return bool(json.loads((Path(image_root) / SAME_PHOTO_RECORD).read_text())["identical"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _compare_twins(root: Path, pairs: list[tuple[Path, Path]]) -> bool:
    """Compare photos fetched under both years' names; record the verdict when there was something to compare."""
    compared = [(str(a.relative_to(root)), str(b.relative_to(root)), sha256_file(a), sha256_file(b)) for a, b in pairs]
    identical = bool(compared) and all(ha == hb for *_, ha, hb in compared)
    if compared:
        with contextlib.suppress(OSError):
            atomic_write_json(root / SAME_PHOTO_RECORD, {"identical": identical, "compared": compared})
        if not identical:
            print(f"COCO 2014 and 2017 files of the same photo differ ({compared[0][0]} against {compared[0][1]}): "
                  f"each name is fetched on its own (recorded in {root / SAME_PHOTO_RECORD})")
    return identical


def _link(twin: Path, dest: Path) -> None:
    """``dest`` as the same file as ``twin``: a hard link, or a copy where the file system has none (Drive)."""
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(twin, tmp)
        except OSError:
            shutil.copyfile(twin, tmp)


COCO_MEAN_IMAGE_BYTES = 160_000  # val2017: 788 MB / 5,000 images; train2017: 18 GB / 118,287


def check_space(n_images: int, root: Path, desc: str = "images", linked: int = 0) -> None:
    """Say how many images will be fetched (and about how many GB) into ``root`` and how much room is free there
    (and how many, ``linked``, are there already under their other COCO year's name);
    :class:`~fgclip_utils.cache.InsufficientSpace`, before any download, when they would not fit with a margin."""
    if linked:
        print(f"{desc}: {linked:,} images are already in {root} under their other COCO year's name: linked, "
              "not fetched")
    if n_images:
        require_space(n_images * COCO_MEAN_IMAGE_BYTES, root, f"{n_images:,} images",
                      "free some space, point $FGCLIP_IMAGES at a larger disk (on Colab, untick images_on_drive), or "
                      "fetch fewer images (notebook 02: warmup_start='released' with paper_kinds without "
                      "'paper-attention', which has no released warm-up, skips stage 1's COCO images; warmup_images "
                      "caps them)", desc=desc)


def _image_validator(size: tuple[int, int] | None):
    def usable(path: Path) -> bool:
        problem = check_image(path, size)
        if problem is not None:
            raise DownloadError(f"the downloaded file {problem}")
        return True
    return usable


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB: transparency composited on white, 16-bit grey scaled to 8 bits; a floating-point
    image is refused (its range is unknown)."""
    if image.mode == "F":
        raise ValueError("a floating-point (mode F) image has no known range: convert it to 8 or 16 bits first")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def crop_box(bbox: tuple[float, float, float, float], scale_factor: float, width: int, height: int
             ) -> tuple[int, int, int, int]:
    """Pixel box (left, upper, right, lower) of ``bbox`` (x, y, w, h) as the FG-OVD authors cut it.

    Their rule (FG-CLIP ``fg-ovd_feature_extraction/extraction.py``): the box is enlarged by ``scale_factor``,
    its top-left corner moved up-left by ``(new_size - size) // 2`` (Python floor division of floats), the
    corners clipped to the image, then left/upper floored and right/lower ceiled. A box that would be empty
    (possible only for a box outside the image) is an error.
    """
    if scale_factor <= 0:
        raise ValueError(f"scale_factor must be positive, got {scale_factor}")
    x, y, w, h = (float(v) for v in bbox)
    new_w, new_h = w * scale_factor, h * scale_factor
    left, upper = x - (new_w - w) // 2, y - (new_h - h) // 2
    right, lower = left + new_w, upper + new_h
    left, upper = max(left, 0.0), max(upper, 0.0)
    right, lower = min(right, float(width)), min(lower, float(height))
    box = (int(np.floor(left)), int(np.floor(upper)), int(np.ceil(right)), int(np.ceil(lower)))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"box {bbox} (scale {scale_factor}) leaves nothing of a {width}x{height} image")
    return box


def crop(image: Image.Image, bbox: tuple[float, float, float, float], scale_factor: float = 1.0) -> Image.Image:
    """The object crop of ``bbox`` (x, y, w, h) in ``image``, enlarged by ``scale_factor``, as RGB."""
    return to_rgb(image.crop(crop_box(bbox, scale_factor, *image.size)))
