"""The FG-OVD benchmark: split names and JSON parsing with clear errors.

Each split file is COCO-style (``images``, ``categories``, ``annotations``); a category ``name`` is a full
caption, an annotation's ``category_id`` is its positive caption and ``neg_category_ids`` its hard negatives.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BBOX_TOLERANCE_PX = 1.0  # COCO boxes may overshoot the border by rounding


@dataclass(frozen=True)
class SplitInfo:
    """One FG-OVD split: every per-split fact of the study lives in this one table (:data:`SPLITS`)."""

    name: str  # key used throughout the study, e.g. "hard"
    title: str  # as the papers print it, e.g. "Hard"
    file_name: str  # file in the FG-OVD repository
    group: str  # "difficulty" or "attribute"
    paper_n: int  # negatives the paper ranks each positive against (STUDY.md 7.1)
    synthetic_n: int  # negatives every synthetic annotation has (an attribute split offers each other value once)
    changed_attributes: int | None = None  # difficulty splits: attributes a negative changes
    attribute: str | None = None  # attribute splits: which attribute type


# synthetic_n: 10 negatives per difficulty split; an attribute split has one fewer than the synthetic benchmark's
# values of that attribute (6 colours, 3 materials, 4 patterns, 2 transparencies: checked by tests/test_synth.py)
SPLITS: dict[str, SplitInfo] = {
    "trivial": SplitInfo("trivial", "Trivial", "shuffle_negatives.json", "difficulty", 10, 10),
    "easy": SplitInfo("easy", "Easy", "3_attributes.json", "difficulty", 10, 10, changed_attributes=3),
    "medium": SplitInfo("medium", "Medium", "2_attributes.json", "difficulty", 10, 10, changed_attributes=2),
    "hard": SplitInfo("hard", "Hard", "1_attributes.json", "difficulty", 10, 10, changed_attributes=1),
    "color": SplitInfo("color", "Color", "color.json", "attribute", 10, 5, attribute="color"),
    "material": SplitInfo("material", "Material", "material.json", "attribute", 10, 2, attribute="material"),
    "pattern": SplitInfo("pattern", "Pattern", "pattern.json", "attribute", 7, 3, attribute="pattern"),
    "transparency": SplitInfo("transparency", "Transparency", "transparency.json", "attribute", 2, 1,
                              attribute="transparency"),
}
DIFFICULTY_SPLITS = [k for k, v in SPLITS.items() if v.group == "difficulty"]
ATTRIBUTE_SPLITS = [k for k, v in SPLITS.items() if v.group == "attribute"]
ATTRIBUTE_TYPES = tuple(SPLITS[k].attribute for k in ATTRIBUTE_SPLITS)  # color, material, pattern, transparency
# negatives the paper ranks each split's positive against, and the synthetic benchmark's stand-in for it
PAPER_N: dict[str, int] = {k: v.paper_n for k, v in SPLITS.items()}
SYNTHETIC_N: dict[str, int] = {k: v.synthetic_n for k, v in SPLITS.items()}


@dataclass(frozen=True)
class Annotation:
    id: int
    image_id: int
    bbox: tuple[float, float, float, float]  # x, y, w, h in pixels
    positive: str
    negatives: list[str]
    category_id: int
    neg_category_ids: list[int]
    attributes: dict[str, str] | None = None  # known attribute values (synthetic benchmark only)

    @property
    def rankable(self) -> bool:
        return len(self.negatives) > 0


@dataclass
class Split:
    name: str
    path: Path
    annotations: list[Annotation]
    images: dict[int, dict[str, Any]]
    categories: dict[int, str] = field(repr=False)
    identical_negatives: list[int] = field(default_factory=list)  # annotations with a negative equal to the positive

    @property
    def n_skipped(self) -> int:
        """Annotations with no negatives: kept, but they cannot be ranked."""
        return sum(not a.rankable for a in self.annotations)

    @property
    def max_negatives(self) -> int:
        return max((len(a.negatives) for a in self.annotations), default=0)

    def __len__(self) -> int:
        return len(self.annotations)


def _fail(path: Path, where: str, msg: str) -> ValueError:
    return ValueError(f"{path}: {where}: {msg}")


def _require(rec: Any, keys: Iterable[str], path: Path, where: str) -> None:
    if not isinstance(rec, dict):
        raise _fail(path, where, f"expected an object, got {type(rec).__name__}")
    for key in keys:
        if key not in rec:
            raise _fail(path, where, f"missing field '{key}'")


def _number(value: Any) -> bool:
    """A finite JSON number (an integer too large for a float is not one)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _id(value: Any, path: Path, where: str, field_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(path, where, f"field '{field_name}' must be an integer id, got {value!r}")
    if not 0 <= value < 2 ** 63:  # what a tensor of ids can hold
        raise _fail(path, where, f"field '{field_name}' {value} is outside the ids a file may use (0 to 2**63 - 1)")
    return value


def _text(value: Any, path: Path, where: str, field_name: str) -> str:
    """A non-empty string that can be written as UTF-8 (JSON admits lone surrogates, which no file can hold)."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, where, f"field '{field_name}' must be a non-empty caption")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _fail(path, where, f"field '{field_name}' holds a character UTF-8 cannot encode ({exc.reason} at "
                                 f"{exc.start})") from exc
    return value


def _relative_file(value: Any, path: Path, where: str) -> str:
    """``file_name`` must name a file below the image root: relative, no '..', not a folder."""
    if not isinstance(value, str):
        raise _fail(path, where, f"field 'file_name' must be a string, got {type(value).__name__}")
    parts = value.split("/")
    if (not value or value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts)):
        raise _fail(path, where, f"field 'file_name' {value!r} must be a relative path to a file "
                                 "(like 'val2017/000000239627.jpg')")
    return value


def _read_json(path: Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise ValueError(f"{path}: JSON nested too deeply to be a split file") from exc


def load_split(path: str | os.PathLike, name: str | None = None) -> Split:
    """Parse one FG-OVD split file; raise ``ValueError`` naming the file and field on malformed input.

    Ids must be integers and unique within their list; ``file_name`` must be a relative path to a file. A
    negative whose caption equals its positive's is kept as the file has it (it ties with the positive, which
    counts as a miss) and listed in :attr:`Split.identical_negatives`.
    """
    path = Path(path)
    data = _read_json(path)
    _require(data, ("images", "categories", "annotations"), path, "top level")
    for key in ("images", "categories", "annotations"):
        if not isinstance(data[key], list):
            raise _fail(path, f"field '{key}'", "expected a list")

    images: dict[int, dict[str, Any]] = {}
    for i, img in enumerate(data["images"]):
        where = f"images[{i}]"
        _require(img, ("id", "file_name", "width", "height"), path, where)
        image_id = _id(img["id"], path, where, "id")
        if image_id in images:
            raise _fail(path, where, f"duplicate image id {image_id}")
        _relative_file(img["file_name"], path, where)
        if not (_number(img["width"]) and _number(img["height"]) and img["width"] > 0 and img["height"] > 0):
            raise _fail(path, where, f"field 'width'/'height' must be positive numbers, got "
                                     f"{img['width']!r} x {img['height']!r}")
        images[image_id] = img

    categories: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        where = f"categories[{i}]"
        _require(cat, ("id", "name"), path, where)
        cat_id = _id(cat["id"], path, where, "id")
        if cat_id in categories:
            raise _fail(path, where, f"duplicate category id {cat_id}")
        categories[cat_id] = _text(cat["name"], path, where, "name")

    annotations: list[Annotation] = []
    seen: set[int] = set()
    identical: list[int] = []
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}] (id={ann.get('id') if isinstance(ann, dict) else '?'})"
        _require(ann, ("id", "image_id", "bbox", "category_id"), path, where)
        ann_id = _id(ann["id"], path, where, "id")
        if ann_id in seen:
            raise _fail(path, where, f"duplicate annotation id {ann_id}")
        seen.add(ann_id)
        image_id = _id(ann["image_id"], path, where, "image_id")
        if image_id not in images:
            raise _fail(path, where, f"field 'image_id' {image_id!r} is not in 'images'")
        category_id = _id(ann["category_id"], path, where, "category_id")
        if category_id not in categories:
            raise _fail(path, where, f"field 'category_id' {category_id!r} is not in 'categories'")
        neg_ids = ann.get("neg_category_ids")
        if neg_ids is None:
            neg_ids = []
        if not isinstance(neg_ids, list):
            raise _fail(path, where, f"field 'neg_category_ids' must be a list, got {type(neg_ids).__name__}")
        for nid in neg_ids:
            if not isinstance(nid, int) or isinstance(nid, bool) or nid not in categories:
                raise _fail(path, where, f"field 'neg_category_ids' has {nid!r}, which is not in 'categories'")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list | tuple) and len(bbox) == 4 and all(map(_number, bbox))):
            raise _fail(path, where, f"field 'bbox' must be [x, y, w, h] numbers, got {bbox!r}")
        x, y, w, h = map(float, bbox)
        if w <= 0 or h <= 0:
            raise _fail(path, where, f"field 'bbox' has non-positive size w={w}, h={h}")
        img = images[image_id]
        tol = BBOX_TOLERANCE_PX
        outside = x >= img["width"] or y >= img["height"] or x + w <= 0 or y + h <= 0  # no pixel of the image
        if outside or x < -tol or y < -tol or x + w > img["width"] + tol or y + h > img["height"] + tol:
            raise _fail(path, where, f"field 'bbox' {bbox!r} lies outside image {image_id} "
                                     f"({img['width']}x{img['height']})")
        positive = categories[category_id]
        negatives = [categories[n] for n in neg_ids]
        if positive in negatives:
            identical.append(ann_id)
        attrs = ann.get("attributes")
        annotations.append(Annotation(
            id=ann_id, image_id=image_id, bbox=(x, y, w, h), positive=positive, negatives=negatives,
            category_id=category_id, neg_category_ids=list(neg_ids),
            attributes=dict(attrs) if isinstance(attrs, dict) else None,
        ))
    return Split(name=name or path.stem, path=path, annotations=annotations, images=images,
                 categories=categories, identical_negatives=identical)
