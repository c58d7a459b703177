"""Captioned images for coarse-grained retrieval and the warm-up training: COCO Karpathy splits, and the
synthetic benchmark's scenes.

The Karpathy splits of COCO 2014 (Karpathy & Fei-Fei 2015): ``test`` and ``val`` hold 5,000 images each;
``train`` here means train + restval (113,287 images), the set the paper's warm-up trains on. Every image keeps
its first five captions, as the FG-CLIP authors' code selects them (``sentids[:5]``; read from their code, not
checked against their own caption files, which are not published).

Where the captions come from, first match wins:

1. ``karpathy_json=`` or ``$FGCLIP_KARPATHY_JSON``: Karpathy's own ``dataset_coco.json`` (or the
   ``caption_datasets.zip`` holding it), a local path or a URL. (Stanford's original URL has been dead since
   2023; a copy you have is accepted.)
2. Otherwise, ``test`` and ``val`` come from the COCO-format Karpathy files that LAION's CLIP_benchmark
   downloads (mehdidc/retrieval_annotations, release 1.0.0). Their ``train`` file holds the Karpathy train
   images only (it was cut from ``captions_train2014.json``), not restval, so ``train`` is assembled from
   COCO's own 2014 caption annotations instead: every train2014 image, plus every val2014 image that is in
   neither Karpathy val nor test (that is restval). No hash is published for these files; their sha256 is
   recorded on first download and verified on every later use.

``smoke`` uses captions of the synthetic benchmark's scenes that name only each object's colour and shape.
"""
from __future__ import annotations

import json
import os
import urllib.parse
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..atomic_io import atomic_path
from ..profiles import Profile
from .assets import KARPATHY_SPLIT_FILES, Asset, asset, coco_image_url
from .benchmark_data import Benchmark
from .coco_images import default_image_root, fetch_records
from .download import DownloadError, fetch_asset

KARPATHY_JSON_ENV = "FGCLIP_KARPATHY_JSON"
CAPTIONS_PER_IMAGE = 5
KARPATHY_SPLITS = ("train", "val", "test")  # "train" = Karpathy train + restval


@dataclass
class CaptionSet:
    """Images with their captions; ``caption_image[j]`` is the image index of caption j."""

    name: str
    images: list[dict]  # {"file_name", "coco_url"?, "width"?, "height"?}
    captions: list[str]
    caption_image: torch.Tensor
    source: str = ""  # where the captions came from

    def relevance(self) -> torch.Tensor:
        """(captions, images) boolean mask of which image each caption describes."""
        mask = torch.zeros(len(self.captions), len(self.images), dtype=torch.bool)
        mask[torch.arange(len(self.captions)), self.caption_image] = True
        return mask


def _read_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: not a JSON file ({exc})") from exc


def _caption_set(name: str, source: str, grouped: list[tuple[dict, list[str]]], limit: int | None) -> CaptionSet:
    images, captions, owner = [], [], []
    for record, texts in grouped[:limit] if limit else grouped:
        images.append(record)
        for text in texts[:CAPTIONS_PER_IMAGE]:
            captions.append(text.strip())
            owner.append(len(images) - 1)
    return CaptionSet(name, images, captions, torch.tensor(owner, dtype=torch.long), source)


def load_karpathy(path: str | os.PathLike, split: str = "test", limit: int | None = None) -> CaptionSet:
    """Parse Karpathy's ``dataset_coco.json``: ``split`` is ``test``, ``val`` or ``train`` (train + restval);
    at most ``limit`` images. ``ValueError`` names the file and field when malformed."""
    path = Path(path)
    if split not in KARPATHY_SPLITS:
        raise ValueError(f"split must be one of {KARPATHY_SPLITS}, got {split!r}")
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{path}: expected an object with an 'images' list")
    wanted = {"train", "restval"} if split == "train" else {split}
    grouped = []
    for i, rec in enumerate(data["images"]):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: images[{i}]: expected an object")
        for key in ("filepath", "filename", "split", "sentences"):
            if key not in rec:
                raise ValueError(f"{path}: images[{i}]: missing field '{key}'")
        if rec["split"] not in wanted:
            continue
        texts = [s.get("raw") if isinstance(s, dict) else None for s in rec["sentences"]]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{path}: images[{i}]: field 'sentences' must be a list of {{'raw': caption}}")
        record = {"file_name": f"{rec['filepath']}/{rec['filename']}",
                  "coco_url": coco_image_url(rec["filepath"], rec["filename"])}
        grouped.append((record, texts))
    if not grouped:
        raise ValueError(f"{path}: no image has split {split!r}")
    return _caption_set(f"coco-karpathy-{split}", f"Karpathy dataset_coco.json ({path.name})", grouped, limit)


def _coco_folder(rec: dict) -> str:
    """``val2014`` or ``train2014``: from the image's ``coco_url``, else from its ``COCO_<folder>_…`` name."""
    url = rec.get("coco_url")
    if isinstance(url, str) and url:
        return urllib.parse.urlsplit(url).path.rstrip("/").split("/")[-2]
    parts = str(rec["file_name"]).split("_")
    if len(parts) >= 3 and parts[0] == "COCO":
        return parts[1]
    raise ValueError(f"image {rec.get('id')}: cannot tell its COCO folder (no 'coco_url', name {rec['file_name']!r})")


def coco_caption_images(path: str | os.PathLike) -> list[tuple[dict, list[str]]]:
    """A COCO-format caption file (``images`` + ``annotations`` with ``caption``; COCO's own or a Karpathy split
    cut from it): each image record (``file_name`` as ``<folder>/<name>``, ``coco_url``, ``width``, ``height``,
    ``id``) with its captions in file order. ``ValueError`` names the file and field when malformed."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: expected an object with 'images' and 'annotations' lists")
    captions: dict[int, list[str]] = {}
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), int) \
                or not isinstance(ann.get("caption"), str):
            raise ValueError(f"{path}: annotations[{i}]: needs an integer 'image_id' and a string 'caption'")
        captions.setdefault(ann["image_id"], []).append(ann["caption"])
    grouped, seen = [], set()
    for i, rec in enumerate(data["images"]):
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), int) or not isinstance(rec.get("file_name"), str):
            raise ValueError(f"{path}: images[{i}]: needs an integer 'id' and a string 'file_name'")
        if rec["id"] in seen:
            raise ValueError(f"{path}: images[{i}]: duplicate image id {rec['id']}")
        seen.add(rec["id"])
        if not captions.get(rec["id"]):
            raise ValueError(f"{path}: images[{i}] (id={rec['id']}): no caption in 'annotations'")
        try:
            folder = _coco_folder(rec)
        except ValueError as exc:
            raise ValueError(f"{path}: images[{i}]: {exc}") from exc
        name = rec["file_name"].split("/")[-1]
        record = {"id": rec["id"], "file_name": f"{folder}/{name}",
                  "coco_url": rec.get("coco_url") or coco_image_url(folder, name)}
        if isinstance(rec.get("width"), int) and isinstance(rec.get("height"), int):
            record.update(width=rec["width"], height=rec["height"])
        grouped.append((record, captions[rec["id"]]))
    return grouped


def _valid_coco_captions(path: Path) -> bool:
    try:
        coco_caption_images(path)
    except ValueError as exc:
        raise DownloadError(f"not a COCO caption file: {exc}") from exc
    return True


def _valid_zip(path: Path) -> bool:
    """A zip archive whose every member reads back with its CRC (``is_zipfile`` checks the end record only)."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DownloadError(f"not a readable zip archive: {exc}") from exc
    if bad is not None:
        raise DownloadError(f"zip member {bad!r} is corrupt")
    return True


def _extract(archive: Path, member_suffix: str, dest: Path) -> Path:
    """The archive member ending in ``member_suffix``, extracted once (atomically) to ``dest``."""
    if dest.is_file():
        return dest
    with zipfile.ZipFile(archive) as zf:
        member = next((n for n in zf.namelist() if n.endswith(member_suffix)), None)
        if member is None:
            raise ValueError(f"{archive}: no member named *{member_suffix}")
        with atomic_path(dest) as tmp, zf.open(member) as src, open(tmp, "wb") as out:
            while block := src.read(1 << 20):
                out.write(block)
    return dest


def _resolve_karpathy_json(source: str, cache_dir: Path) -> Path:
    """``dataset_coco.json`` from a local path or URL (a ``.json``, or a ``.zip`` holding it)."""
    if urllib.parse.urlsplit(source).scheme in ("http", "https"):
        name = Path(urllib.parse.urlsplit(source).path).name or "dataset_coco.json"
        entry = Asset(f"karpathy-override/{name}", source, "coco_captions", f"override/{name}", None,
                      max_bytes=1 << 30, deadline=3600.0)
        path = fetch_asset(entry, folder=cache_dir, validate=_valid_zip if name.endswith(".zip") else None)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path} (Karpathy captions, from karpathy_json or ${KARPATHY_JSON_ENV}) "
                                    "does not exist")
    if zipfile.is_zipfile(path):
        _valid_zip(path)
        return _extract(path, "dataset_coco.json", cache_dir / "override" / f"{path.stem}-dataset_coco.json")
    return path


def coco_karpathy(split: str = "test", *, limit: int | None = None, karpathy_json: str | None = None,
                  cache_dir: str | os.PathLike | None = None) -> CaptionSet:
    """The COCO Karpathy ``split`` (``test``, ``val``, or ``train`` = train + restval) with at most ``limit``
    images, from the source the module docstring describes; downloads what it needs, once."""
    if split not in KARPATHY_SPLITS:
        raise ValueError(f"split must be one of {KARPATHY_SPLITS}, got {split!r}")
    source = karpathy_json or os.environ.get(KARPATHY_JSON_ENV)
    folder = Path(cache_dir) if cache_dir else asset(_karpathy_key("test")).local_path().parent
    if source:
        return load_karpathy(_resolve_karpathy_json(source, folder), split, limit)
    name = f"coco-karpathy-{split}"
    if split != "train":
        path = fetch_asset(_karpathy_key(split), folder=folder, validate=_valid_coco_captions)
        return _caption_set(name, f"CLIP_benchmark {path.name}", coco_caption_images(path), limit)
    held_out = {rec["id"] for s in ("val", "test") for rec, _ in coco_caption_images(
        fetch_asset(_karpathy_key(s), folder=folder, validate=_valid_coco_captions))}
    archive = fetch_asset("coco/annotations/annotations_trainval2014.zip", folder=folder, validate=_valid_zip)
    grouped = []
    for part in ("train2014", "val2014"):
        path = _extract(archive, f"captions_{part}.json", folder / f"captions_{part}.json")
        grouped += [(rec, texts) for rec, texts in coco_caption_images(path) if rec["id"] not in held_out]
    return _caption_set(name, "COCO 2014 captions: train2014 + restval (val2014 minus Karpathy val/test)",
                        grouped, limit)


def _karpathy_key(split: str) -> str:
    return f"retrieval_annotations/{KARPATHY_SPLIT_FILES[split]}"


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
    return CaptionSet("synthetic-scenes", images, captions, torch.tensor(owner), "synthetic benchmark scenes")


def coarse_caption_set(profile: Profile, bench: Benchmark, subset: str = "test", limit: int | None = None
                       ) -> tuple[CaptionSet, Path]:
    """Captioned images and their image root: the COCO Karpathy ``subset`` in ``full`` (at most ``limit``
    images; for ``test``, by default the profile's ``coco_limit``), the synthetic scenes of ``bench`` in
    ``smoke``. Every image is fetched; a missing one is an error,
    since retrieval over an incomplete gallery is not the published measure."""
    if profile.data.synthetic:
        return synthetic_caption_set(bench), bench.image_root
    if limit is None and subset == "test":
        limit = profile.data.coco_limit
    cs = coco_karpathy(subset, limit=limit)
    root = default_image_root()
    report = fetch_records(dict(enumerate(cs.images)), root, workers=profile.data.image_workers, desc=cs.name)
    if report.missing:
        raise RuntimeError(f"{len(report.missing)} COCO images of {cs.name} could not be fetched, e.g. "
                           f"{next(iter(report.missing.values()))}")
    return replace(cs), root
