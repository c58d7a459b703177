"""A synthetic fine-grained benchmark in exactly the FG-OVD schema, rendered offline and deterministically.

Scenes hold a few simple objects (shapes) drawn over a textured background with controlled attributes:
colour, material, pattern, transparency and size. Captions read like "a large red striped wooden translucent
star". Hard negatives change 1 (Hard), 2 (Medium) or 3 (Easy) attribute types; Trivial negatives are other
objects' captions; the attribute splits change one attribute type only. Annotations carry an extra
``attributes`` field with the true values (FG-OVD files do not have it; the study uses it for colouring).
"""
from __future__ import annotations

import itertools
import math
import os
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..atomic_io import atomic_path, atomic_write_json, sha256_json
from .fgovd import SPLITS

SYNTH_VERSION = 1
IMAGE_SIZE = 256
GRID = 2  # objects sit in the cells of a GRID x GRID layout, so they never overlap
MAX_NEGATIVES = 10

COLORS = {"red": (215, 38, 38), "green": (34, 160, 60), "blue": (40, 80, 225), "yellow": (240, 205, 30),
          "purple": (135, 55, 180), "orange": (245, 135, 25)}
MATERIALS = ("plastic", "metal", "wooden")
PATTERNS = ("plain", "striped", "dotted", "checkered")
TRANSPARENCIES = ("opaque", "translucent")
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "diamond")
SIZES = ("small", "large")
# the four FG-OVD attribute types, in caption order
ATTRIBUTES: dict[str, tuple[str, ...]] = {"color": tuple(COLORS), "pattern": PATTERNS, "material": MATERIALS,
                                          "transparency": TRANSPARENCIES}
def caption(obj: dict) -> str:
    return (f"a {obj['size']} {obj['color']} {obj['pattern']} {obj['material']} "
            f"{obj['transparency']} {obj['shape']}")


def image_root(out_dir: str | os.PathLike) -> Path:
    """Folder that holds the synthetic images (pass it wherever the study takes an image root)."""
    return Path(out_dir) / "images"


# ---------------------------------------------------------------- rendering
def _shape_mask(shape: str, size: int) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    m = size * 0.04
    box = (m, m, size - m, size - m)
    c, r = size / 2, size / 2 - m
    if shape == "circle":
        d.ellipse(box, fill=255)
    elif shape == "square":
        d.rectangle((size * 0.1, size * 0.1, size * 0.9, size * 0.9), fill=255)
    elif shape == "triangle":
        d.polygon([(c, m), (size - m, size - m), (m, size - m)], fill=255)
    elif shape == "diamond":
        d.polygon([(c, m), (size - m, c), (c, size - m), (m, c)], fill=255)
    elif shape == "hexagon":
        d.polygon([(c + r * math.cos(a), c + r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 7)[:-1]],
                  fill=255)
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((c + rad * math.cos(a), c + rad * math.sin(a)))
        d.polygon(pts, fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return mask


def _surface(obj: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """RGB float array (size, size, 3) in [0, 255]: colour, then material shading, then pattern."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.broadcast_to(np.array(COLORS[obj["color"]], np.float32), (size, size, 3)).copy()
    material = obj["material"]
    if material == "metal":  # brushed, mirror-like: strong diagonal light falloff and a bright sheen band
        light = 0.55 + 0.75 * np.clip(1 - np.abs((xx + yy) - 0.8) * 1.6, 0, 1)
        rgb = rgb * light[..., None] + 60 * np.exp(-((xx - yy) ** 2) / 0.004)[..., None]
    elif material == "wooden":  # warm tint and wavy grain lines
        grain = 0.5 + 0.5 * np.sin(2 * math.pi * (yy * 9 + 0.08 * np.sin(2 * math.pi * xx * 3)))
        rgb = rgb * (0.75 + 0.25 * grain[..., None]) * np.array([1.0, 0.85, 0.65], np.float32) + \
            np.array([45, 20, 0], np.float32)
    else:  # plastic: flat, with a soft specular highlight
        rgb = rgb + 140 * np.exp(-(((xx - 0.32) ** 2) + ((yy - 0.3) ** 2)) / 0.01)[..., None]
    pattern = obj["pattern"]
    if pattern == "striped":
        rgb = np.where(((xx + yy) * 7 % 1 < 0.5)[..., None], rgb * 0.35, rgb)
    elif pattern == "dotted":
        d = ((xx * 6 % 1 - 0.5) ** 2 + (yy * 6 % 1 - 0.5) ** 2) < 0.06
        rgb = np.where(d[..., None], 250.0, rgb)
    elif pattern == "checkered":
        rgb = np.where(((np.floor(xx * 5) + np.floor(yy * 5)) % 2 == 1)[..., None], rgb * 0.3 + 170, rgb)
    rgb = rgb + rng.normal(0, 4, rgb.shape)
    return np.clip(rgb, 0, 255)


def _background(rng: np.random.Generator) -> np.ndarray:
    """Textured background (so that translucency is visible): a soft grey checkerboard with noise."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    base = rng.uniform(150, 200)
    check = ((xx // 16 + yy // 16) % 2) * 45.0
    grey = base - check + rng.normal(0, 6, (IMAGE_SIZE, IMAGE_SIZE))
    tint = rng.uniform(0.9, 1.1, 3)
    return np.clip(grey[..., None] * tint, 0, 255)


def _render(objects: list[dict], rng: np.random.Generator) -> tuple[Image.Image, list[list[float]]]:
    canvas = _background(rng)
    cell = IMAGE_SIZE // GRID
    boxes = []
    for obj in objects:
        side = int(cell * (0.48 if obj["size"] == "small" else 0.9))
        gx, gy = obj["cell"] % GRID, obj["cell"] // GRID
        x0 = gx * cell + int(rng.integers(0, cell - side + 1))
        y0 = gy * cell + int(rng.integers(0, cell - side + 1))
        mask = np.asarray(_shape_mask(obj["shape"], side), np.float32) / 255
        alpha = mask * (1.0 if obj["transparency"] == "opaque" else 0.42)
        region = canvas[y0:y0 + side, x0:x0 + side]
        canvas[y0:y0 + side, x0:x0 + side] = region * (1 - alpha[..., None]) + \
            _surface(obj, side, rng) * alpha[..., None]
        ys, xs = np.nonzero(mask > 0.5)
        boxes.append([float(x0 + xs.min()), float(y0 + ys.min()), float(xs.max() - xs.min() + 1),
                      float(ys.max() - ys.min() + 1)])
    return Image.fromarray(canvas.astype(np.uint8)), boxes


# ---------------------------------------------------------------- negatives
def _changed(obj: dict, types: tuple[str, ...], rng: random.Random) -> list[dict]:
    """Every variant of ``obj`` with each attribute type in ``types`` set to a different value."""
    options = [[v for v in ATTRIBUTES[t] if v != obj[t]] for t in types]
    return [{**obj, **dict(zip(types, values, strict=True))} for values in itertools.product(*options)]


def _hard_negatives(obj: dict, n_changed: int, rng: random.Random) -> list[str]:
    variants = [v for types in itertools.combinations(ATTRIBUTES, n_changed) for v in _changed(obj, types, rng)]
    rng.shuffle(variants)
    return [caption(v) for v in variants[:MAX_NEGATIVES]]


def _attribute_negatives(obj: dict, attribute: str, rng: random.Random) -> list[str]:
    variants = _changed(obj, (attribute,), rng)
    rng.shuffle(variants)
    return [caption(v) for v in variants[:MAX_NEGATIVES]]


def _trivial_negatives(obj: dict, others: list[dict], rng: random.Random) -> list[str]:
    pool = sorted({caption(o) for o in others if o["shape"] != obj["shape"]})
    return rng.sample(pool, min(MAX_NEGATIVES, len(pool)))


def _negatives(split: str, obj: dict, objects: list[dict], rng: random.Random) -> list[str]:
    info = SPLITS[split]
    if split == "trivial":
        return _trivial_negatives(obj, objects, rng)
    if info.group == "difficulty":
        return _hard_negatives(obj, info.changed_attributes, rng)
    return _attribute_negatives(obj, info.attribute, rng)


# ---------------------------------------------------------------- benchmark
def _sample_objects(n_objects: int, rng: random.Random) -> list[list[dict]]:
    """Objects grouped by image: 1 to GRID*GRID objects per image, in distinct cells."""
    scenes, left = [], n_objects
    while left > 0:
        k = min(left, rng.randint(1, GRID * GRID))
        cells = rng.sample(range(GRID * GRID), k)
        scenes.append([{"shape": rng.choice(SHAPES), "size": rng.choice(SIZES), "cell": c,
                        **{a: rng.choice(v) for a, v in ATTRIBUTES.items()}} for c in cells])
        left -= k
    return scenes


def make_benchmark(out_dir: str | os.PathLike, n_objects: int = 200, seed: int = 0) -> dict[str, Path]:
    """Render the benchmark into ``out_dir`` (images under ``out_dir/images``) and return split -> JSON path.

    Deterministic from ``seed``: the same arguments give byte-identical files. A folder that already
    holds this exact benchmark (same version, size and seed) is reused as it is.
    """
    if n_objects < 1:
        raise ValueError(f"n_objects must be at least 1, got {n_objects}")
    out_dir = Path(out_dir)
    params = {"version": SYNTH_VERSION, "n_objects": n_objects, "seed": seed}
    paths = {name: out_dir / info.file_name for name, info in SPLITS.items()}
    manifest = out_dir / "manifest.json"
    if manifest.exists() and all(p.exists() for p in paths.values()):
        try:
            import json
            if json.loads(manifest.read_text()).get("params_sha256") == sha256_json(params):
                return paths
        except ValueError:
            pass

    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    scenes = _sample_objects(n_objects, rng)
    images, objects = [], []
    root = image_root(out_dir)
    for image_id, scene in enumerate(scenes, start=1):
        picture, boxes = _render(scene, np_rng)
        file_name = f"synth/{image_id:012d}.png"
        dest = root / file_name
        with atomic_path(dest) as tmp:
            picture.save(tmp, format="PNG")
        # no coco_url: synthetic images are rendered, not downloaded, and the split files stay identical
        # wherever the benchmark is written (so embedding cache keys survive a moved cache)
        images.append({"id": image_id, "file_name": file_name, "width": IMAGE_SIZE, "height": IMAGE_SIZE,
                       "synthetic": True})
        for obj, box in zip(scene, boxes, strict=True):
            objects.append({**obj, "image_id": image_id, "bbox": box})

    for name, path in paths.items():
        split_rng = random.Random(f"{seed}-{name}")
        vocab: dict[str, int] = {}
        annotations = []
        for ann_id, obj in enumerate(objects, start=1):
            pos = caption(obj)
            negs = _negatives(name, obj, objects, split_rng)
            for c in (pos, *negs):
                vocab.setdefault(c, len(vocab) + 1)
            annotations.append({
                "id": ann_id, "image_id": obj["image_id"], "bbox": obj["bbox"], "area": obj["bbox"][2] * obj["bbox"][3],
                "category_id": vocab[pos], "neg_category_ids": [vocab[c] for c in negs],
                "attributes": {k: obj[k] for k in ("shape", "size", *ATTRIBUTES)},
            })
        data = {"info": {"description": f"fgclip synthetic benchmark, split {name}", **params},
                "images": images, "annotations": annotations,
                "categories": [{"id": i, "name": c} for c, i in vocab.items()]}
        atomic_write_json(path, data)
    atomic_write_json(manifest, {"params": params, "params_sha256": sha256_json(params)})
    return paths
