"""A folder of real JPEG photographs for the extraction benchmarks, made offline.

No photographs can be downloaded on the build machine, but three real ones ship with the study's dependencies:
scikit-learn's ``china.jpg`` and ``flower.jpg`` (640x427) and matplotlib's ``grace_hopper.jpg`` (512x600). This
cuts ``n`` images from them (a random 80-100% window, mirrored half of the time), resizes each to a COCO size
(640x480, 640x427 or their portrait forms) and saves it as a quality-90 JPEG, so decoding and resizing cost what
they cost on COCO's photographs. They are not COCO images: only the timings mean anything.

    python benchmarks/photo_folder.py /tmp/photos --n 356
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

COCO_SIZES = ((640, 480), (640, 427), (480, 640), (427, 640))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def source_photographs() -> list[Path]:
    import matplotlib
    import sklearn

    sk = Path(sklearn.__file__).parent / "datasets" / "images"
    mpl = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data"
    paths = [sk / "china.jpg", sk / "flower.jpg", mpl / "grace_hopper.jpg"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"sample photographs not found (scikit-learn or matplotlib changed?): {missing}")
    return paths


def make_photo_folder(out: str | Path, n: int = 356, seed: int = 0) -> list[Path]:
    """Write ``n`` JPEGs ``0000.jpg``... into ``out`` (see the module docstring); return their paths."""
    from PIL import Image, ImageOps

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sources = [Image.open(p).convert("RGB") for p in source_photographs()]
    rng = random.Random(seed)
    written = []
    for i in range(n):
        image = sources[i % len(sources)]
        w, h = image.size
        f = rng.uniform(0.8, 1.0)
        cw, ch = int(w * f), int(h * f)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        part = image.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            part = ImageOps.mirror(part)
        path = out / f"{i:04d}.jpg"
        part.resize(rng.choice(COCO_SIZES), Image.BICUBIC).save(path, quality=90)
        written.append(path)
    return written


def quadrant_crops(folder: str | Path) -> list[tuple[Path, tuple[float, float, float, float]]]:
    """The four quadrant boxes (x, y, w, h) of every image under ``folder`` (recursively, sorted): the
    extraction benchmarks' workload on a folder of images."""
    from PIL import Image

    crops = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        with Image.open(path) as im:
            w, h = im.size
        crops += [(path, (x, y, w / 2, h / 2)) for y in (0, h / 2) for x in (0, w / 2)]
    return crops


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=356)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    files = make_photo_folder(args.out, args.n, args.seed)
    print(f"{len(files)} JPEGs in {args.out} ({sum(f.stat().st_size for f in files) / 2**20:.1f} MiB)")
