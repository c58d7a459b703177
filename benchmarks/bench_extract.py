"""Time embedding extraction: the naive per-annotation loop vs the study's pipeline, same model, same crops.

The workload is the study's: every annotation of the chosen splits of a synthetic benchmark (default: all
eight), i.e. one crop plus its positive and negative captions each; or, with ``--images DIR``, the four
quadrant crops of every image in a folder (no captions). The naive loop
(``benchmarks/reference_loop.py``) opens the image for every annotation and encodes one crop and one
annotation's captions at a time in fp32; the pipeline (:func:`fgclip_utils.embed_splits`, into an
empty temporary cache) decodes each image once, shares objects and captions across splits, preprocesses in
DataLoader workers and batches. Prints crops/s of both and the ratio, how far their embeddings differ, the
model's forward FLOPs per crop and the fraction of the device's peak that the pipeline's crop encoding
reached, and where the pipeline's time went.

    python benchmarks/bench_extract.py                                   # tiny model, CPU
    python benchmarks/bench_extract.py --model ViT-B-16 --objects 24     # ViT-B/16, random init
    python benchmarks/bench_extract.py --device cuda --model ViT-B-16 --objects 480 --batch-size 512
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from photo_folder import IMAGE_SUFFIXES, quadrant_crops  # beside this script
from reference_loop import naive_crop_embedding, naive_embed_split
from throughput import forward_flops, matmul_tflops, nominal_peak_tflops

from fgclip_utils.data.benchmark_data import Benchmark
from fgclip_utils.data.coco_images import image_path
from fgclip_utils.data.fgovd import SPLITS, load_split
from fgclip_utils.data.synthetic import image_root, make_benchmark
from fgclip_utils.extraction.clip_forward import PRECISIONS, encode_pixels, encode_texts, resolve_precision
from fgclip_utils.extraction.clip_models import TINY_MODEL, default_device, load_clip
from fgclip_utils.extraction.crop_pipeline import (
    PipelineStats,
    default_workers,
    encode_crops,
    iter_crop_embeddings,
    plan_crops,
)
from fgclip_utils.extraction.embedding_cache import embed_splits
from fgclip_utils.profiles import ExtractConfig


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--model", default=TINY_MODEL, help="open_clip model name (default: %(default)s)")
    p.add_argument("--pretrained", default=None, help="open_clip pretrained tag or weights file (default: random init)")
    p.add_argument("--batch-size", type=int, default=256, help="pipeline crops per batch (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="pipeline DataLoader workers (default: cores - 1, max 8)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="pipeline precision; auto = bf16 on GPU, fp32 on CPU (the naive loop is always fp32)")
    p.add_argument("--objects", type=int, default=120, help="objects in the synthetic benchmark (default: %(default)s)")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS), metavar="SPLIT",
                   help="splits to extract (default: all eight)")
    p.add_argument("--images", type=Path, default=None, help="time quadrant crops of this image folder instead")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def fmt_rate(n: int, seconds: float) -> str:
    return f"{seconds:8.2f} s  {n / seconds:9.1f} crops/s"


def synthetic_run(bundle, args, work: Path, stats: PipelineStats) -> dict:
    paths = make_benchmark(work / "bench", n_objects=args.objects, seed=args.seed)
    root = image_root(work / "bench")
    splits = [load_split(paths[name], name) for name in args.splits]
    n = sum(len(s.annotations) for s in splits)
    n_captions = sum(1 + len(a.negatives) for s in splits for a in s.annotations)
    print(f"workload: {len(splits)} split(s) of a synthetic benchmark, {n} annotations = crops, "
          f"{n_captions} captions")

    start = time.perf_counter()
    naive = {s.name: naive_embed_split(bundle, s, root, progress=False) for s in splits}
    t_naive = time.perf_counter() - start

    start = time.perf_counter()
    ours = embed_splits(bundle, Benchmark.of(splits, root), cache_dir=work / "cache", workers=args.workers,
                        extract=ExtractConfig(batch_size=args.batch_size, precision=args.precision),
                        progress=False, stats=stats)
    t_ours = time.perf_counter() - start

    d_image = d_text = 0.0
    for s in splits:
        got, ref = ours[s.name], naive[s.name]
        row = {int(a): i for i, a in enumerate(got.annotation_ids)}
        cand = got.candidates()
        for j, ann_id in enumerate(ref.annotation_ids):
            i = row[ann_id]
            d_image = max(d_image, float((got.image[i] - ref.image[j]).abs().max()))
            d_text = max(d_text, float((got.text[cand[i][cand[i] >= 0]] - ref.candidates[j]).abs().max()))
    print(f"distinct: {stats.crops} crops in {len({a.image_id for s in splits for a in s.annotations})} images, "
          f"{stats.extra['captions']} captions")
    crops = [(image_path(root, s.images[a.image_id]), a.bbox) for s in splits for a in s.annotations]
    return {"n": n, "naive_s": t_naive, "ours_s": t_ours, "max_abs_diff_image": d_image, "max_abs_diff_text": d_text,
            "crops": crops}


def folder_run(bundle, args, work: Path, stats: PipelineStats) -> dict:
    crops = quadrant_crops(args.images)
    if not crops:
        raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {args.images}")
    print(f"workload: {len(crops) // 4} images of {args.images}, {len(crops)} quadrant crops, no captions")

    start = time.perf_counter()
    ref = [naive_crop_embedding(bundle, path, box) for path, box in crops]
    t_naive = time.perf_counter() - start

    start = time.perf_counter()
    plan = plan_crops(crops)
    got = encode_crops(bundle, plan, batch_size=args.batch_size, workers=args.workers, precision=args.precision,
                       progress=False, stats=stats)
    t_ours = time.perf_counter() - start
    rows = torch.tensor([plan.row(p, b) for p, b in crops])
    d_image = float((got[rows, :-1] - torch.cat(ref)).abs().max())  # the last column holds the norms
    stats.extra.update(captions=0, captions_s=0.0)
    return {"n": len(crops), "naive_s": t_naive, "ours_s": t_ours, "max_abs_diff_image": d_image,
            "max_abs_diff_text": 0.0, "crops": crops}


def breakdown(bundle, args, crops: list) -> PipelineStats:
    """A second, synchronised pass over the workload's crops to separate transfer from model time (GPU)."""
    stats = PipelineStats()
    for _ in iter_crop_embeddings(bundle, plan_crops(crops), batch_size=args.batch_size, workers=args.workers,
                                  precision=args.precision, progress=False, stats=stats, timed=True):
        pass
    return stats


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device) if args.device else default_device()
    workers = default_workers() if args.workers is None else args.workers
    args.workers = workers
    precision = resolve_precision(device, args.precision)
    bundle = load_clip(args.model, args.pretrained, device=device, seed=args.seed)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"model: {bundle.label} on {device} ({name}); pipeline: {precision}, batch {args.batch_size}, "
          f"{workers} workers; naive: fp32, one crop at a time; torch {torch.__version__}")

    # warm both paths up (first-call allocations, kernel selection) outside the timings
    encode_pixels(bundle, torch.zeros(2, 3, *bundle.image_size), precision)
    encode_pixels(bundle, torch.zeros(2, 3, *bundle.image_size), "fp32")
    encode_texts(bundle, ["a warm-up caption"], progress=False, precision=precision)
    with torch.no_grad():
        bundle.model.encode_text(bundle.tokenizer(["a warm-up caption"]).to(device))

    stats = PipelineStats()
    with tempfile.TemporaryDirectory(prefix="fgclip-bench-") as tmp:
        run = (folder_run if args.images else synthetic_run)(bundle, args, Path(tmp), stats)
        timed = breakdown(bundle, args, run["crops"]) if device.type == "cuda" else stats

    n = run["n"]
    ratio = run["naive_s"] / run["ours_s"]
    print(f"naive loop: {fmt_rate(n, run['naive_s'])}")
    print(f"pipeline:   {fmt_rate(n, run['ours_s'])}   (crops {stats.wall:.2f} s, "
          f"captions {stats.extra['captions_s']:.2f} s)")
    print(f"speed-up:   {ratio:.2f}x")
    print(f"agreement:  max |difference| of unit-norm embeddings: crops {run['max_abs_diff_image']:.2e}, "
          f"captions {run['max_abs_diff_text']:.2e} ({precision} vs fp32)")

    flops = forward_flops(bundle)
    crop_tflops = stats.crops * flops["image"] / stats.wall / 1e12
    model_tflops = timed.crops * flops["image"] / timed.model / 1e12
    roof = matmul_tflops(device, precision)
    peak = nominal_peak_tflops(device, precision)
    print(f"forward FLOPs: {flops['image'] / 1e9:.3f} GFLOP per crop; per caption {flops['text_full'] / 1e9:.3f} "
          f"GFLOP at the full context, {flops['text_trimmed'] / 1e9:.3f} GFLOP trimmed (a typical caption)")
    print(f"crop encoding: {crop_tflops:.3f} TFLOP/s over the pipeline's crop wall time, {model_tflops:.3f} TFLOP/s "
          f"over its model time alone")
    print(f"device roof:   {roof:.2f} TFLOP/s measured on a {4096}^2 {precision} matmul "
          f"-> {100 * crop_tflops / roof:.1f}% of it (model time alone: {100 * model_tflops / roof:.1f}%)")
    if peak:
        print(f"device peak:   {peak[0]:.1f} TFLOP/s ({peak[1]}, {precision} dense datasheet) -> "
              f"{100 * crop_tflops / peak[0]:.2f}% of it (model time alone: {100 * model_tflops / peak[0]:.2f}%)")
    else:
        print("device peak:   no datasheet figure for this device; see the measured roof above")
    print(f"where the crop time went ({timed.crops} crops, {timed.chunks} batches, wall {timed.wall:.2f} s): "
          f"decode {timed.decode:.2f} s + preprocess {timed.preprocess:.2f} s "
          + (f"in {timed.workers} workers (overlapping the model)" if timed.workers else
             "in the main process (one batch: no workers started)")
          + f", main process waiting for batches {timed.wait:.2f} s, "
          f"host-to-device {timed.transfer:.2f} s, model {timed.model:.2f} s")
    return {**run, "ratio": ratio, "flops": flops, "crop_tflops": crop_tflops, "roof_tflops": roof,
            "peak": peak, "stats": stats, "timed": timed}


if __name__ == "__main__":
    sys.exit(main() and 0)
