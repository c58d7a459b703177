"""Time a sweep's extraction: several backbones whose transforms share their geometry, each image decoded once
for all of them (one shared pass) against one pass per backbone, same crops, same pixels.

The workload is the four quadrant crops of every image of a folder (``--images``; default: the JPEG photographs of
:mod:`photo_folder`). Prints both timings, their ratio, and checks that the embeddings are identical.

    python benchmarks/bench_shared_decode.py                          # fgclip-tiny + fgclip-tiny-w128, CPU
    python benchmarks/bench_shared_decode.py --models ViT-B-16 EVA02-B-16 --device cuda --images DIR
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from photo_folder import make_photo_folder, quadrant_crops  # beside this script

from fgclip_utils.extraction.clip_models import default_device, load_clip
from fgclip_utils.extraction.crop_pipeline import (
    default_workers,
    encode_crops,
    plan_crops,
    shared_decode_groups,
)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["fgclip-tiny", "fgclip-tiny-w128"],
                   help="open_clip model names, random init (default: %(default)s)")
    p.add_argument("--images", type=Path, default=None, help="folder of images (default: 356 generated JPEGs)")
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    bundles = [load_clip(m, None, device=device) for m in args.models]
    if len(shared_decode_groups(bundles)) != 1:
        raise SystemExit(f"{args.models} resize differently: they cannot share a decode")
    workers = default_workers(device) if args.workers is None else args.workers
    with tempfile.TemporaryDirectory(prefix="fgclip-photos-") as tmp:
        folder = args.images or Path(tmp)
        if args.images is None:
            make_photo_folder(folder)
        plan = plan_crops(quadrant_crops(folder))
        print(f"workload: {len(plan.images)} images of {folder}, {len(plan)} quadrant crops; backbones "
              f"{', '.join(b.label for b in bundles)} on {device}, {workers} workers")
        opts = dict(batch_size=args.batch_size, workers=workers, progress=False)
        start = time.perf_counter()
        alone = [encode_crops(b, plan, **opts) for b in bundles]
        t_alone = time.perf_counter() - start
        start = time.perf_counter()
        shared = encode_crops(bundles, plan, **opts)
        t_shared = time.perf_counter() - start
    identical = all(torch.equal(a, s) for a, s in zip(alone, shared, strict=True))
    n = len(plan) * len(bundles)
    print(f"one pass per backbone: {t_alone:7.2f} s  {n / t_alone:8.1f} crop-embeddings/s")
    print(f"one shared pass:       {t_shared:7.2f} s  {n / t_shared:8.1f} crop-embeddings/s")
    print(f"speed-up: {t_alone / t_shared:.2f}x; embeddings identical: {identical}")
    return {"alone_s": t_alone, "shared_s": t_shared, "ratio": t_alone / t_shared, "identical": identical}


if __name__ == "__main__":
    sys.exit(0 if main()["identical"] else 1)
