"""The plan of a ``full`` run on Colab before any of it runs: for each long step, what it reads (images, crops,
captions), where its files go (runtime disk or Drive) and the estimated minutes on a T4, an L4 and an A100,
from the study's cost model (``fgclip_utils/extraction/cost_estimate.py``: FLOPs counted on the backbone at
40% of the GPU's datasheet peak, decoding at 150 COCO-sized images/s per DataLoader worker; Colab's two vCPUs
give one worker). The model's FLOPs are counted on a random-init ViT-B/16 here (weights do not change them).
The rates are assumptions from the CPU build machine, not GPU measurements.

It then adds up what each place holds under the storage plan (``drive_cache``: images on the runtime's disk,
embeddings and model weights on Drive; ``--images-on-drive``: the images on Drive too) against a Colab disk
(``--local-gb``, about 100 GB free) and a free Drive (``--drive-gb``, 15 GB), and says whether the run fits, or
which setting makes it fit. It also estimates the stage 1 of each paper head that trains one (the
FLOPs of one step's matrix products counted on a real batch, at 40% of the GPU's fp32 peak, at least 1 ms a step;
beside them, one step timed on this CPU). Photos
Colab already holds under their other COCO year's name are linked, not counted twice; the FG-OVD Hard training
split's ``train2017/`` images are such photos when stage 1 runs.

    .venv/bin/python benchmarks/colab_plan.py [--model ViT-B-16] [--workers 1] [--fgovd-images 6000]
        [--local-gb 100] [--drive-gb 15] [--images-on-drive] [--warmup-start train|released] [--heads KIND ...]
        [--detectors]
"""
from __future__ import annotations

import argparse

from fgclip_utils.data.coco_images import COCO_MEAN_IMAGE_BYTES
from fgclip_utils.extraction.cost_estimate import (
    DECODE_IMAGES_PER_S,
    GPU_EFFICIENCY,
    GPU_PEAK_TFLOPS,
    forward_flops,
    step_flops,
    step_seconds,
)
from fgclip_utils.heads.paper_heads import PAPER_HEAD_KINDS
from fgclip_utils.heads.paper_recipe import RELEASED_WARMUP

KARPATHY_TRAIN, KARPATHY_CAPTIONS = 113_287, 566_435  # train + restval, 5 captions each (STUDY.md 7.4)
WEIGHTS_GB = 0.6  # ViT-B/16's open_clip weights (the README's downloads table)


PAPER_KINDS = tuple(PAPER_HEAD_KINDS)


def stage1_kinds(warmup_start: str = "train", kinds=PAPER_KINDS) -> list[str]:
    """The paper heads that train stage 1: all with ``warmup_start='train'``, else those with no released warm-up."""
    return [k for k in kinds if warmup_start == "train" or k not in RELEASED_WARMUP]


def steps(fgovd_images: int, warmup_start: str = "train", kinds=PAPER_KINDS) -> list[tuple[str, str, int, int, int]]:
    """(step, notebook, images decoded, crops or images encoded, captions encoded)."""
    plan = [
        ("FG-OVD test splits, 8 (crops, 11 captions each)", "01", fgovd_images, 3 * fgovd_images, 33 * fgovd_images),
        ("COCO Karpathy test + val (5,000 + 5,000 images, 5 captions each)", "02", 10_000, 10_000, 50_000),
    ]
    if stage1_kinds(warmup_start, kinds):
        plan.append(("COCO Karpathy train + restval, stage 1 (none with warmup_start='released' and no "
                     "paper-attention)", "02", KARPATHY_TRAIN, KARPATHY_TRAIN, KARPATHY_CAPTIONS))
    return plan


def storage(fgovd_images: int, dim: int, *, warmup_start: str = "train", kinds=PAPER_KINDS,
            images_on_drive: bool = False, local_gb: float = 100.0, drive_gb: float = 15.0) -> dict:
    """GB on the runtime's disk and on Drive, whether each fits its budget, and what would make it fit."""
    images = embeddings = 0.0
    for _, _, n_images, crops, captions in steps(fgovd_images, warmup_start, kinds):
        images += n_images * COCO_MEAN_IMAGE_BYTES / 1e9
        embeddings += (crops + captions) * (dim + 1) * 4 / 1e9  # fp32 rows and their norms
    drive = embeddings + WEIGHTS_GB + (images if images_on_drive else 0.0)
    local = 0.0 if images_on_drive else images
    fits = local <= local_gb and drive <= drive_gb
    advice = ""
    if not fits:
        options = ["untick images_on_drive (the images go to the runtime's disk)"] if images_on_drive else []
        if stage1_kinds(warmup_start, kinds):
            options.append("warmup_start='released' and paper_kinds without 'paper-attention' (no stage-1 COCO "
                           "images)")
        advice = "; or ".join(options) or "free some space"
    return {"local_gb": local, "drive_gb": drive, "images_gb": images, "embeddings_gb": embeddings, "fits": fits,
            "local_budget_gb": local_gb, "drive_budget_gb": drive_gb, "advice": advice}


GPU_STEP_FLOOR_S = 1e-3  # the least one optimizer step of a small head takes on a GPU: its kernel launches (assumed)


def training_seconds(forward_flops: int, n_rows: int, batch_size: int, epochs: int, tflops: float,
                     n_val: int = 0) -> float:
    """Seconds of ``epochs`` over ``n_rows`` rows (and validation over ``n_val``) on a GPU at ``tflops``: three
    times a step's forward FLOPs per training step (forward and backward), at least :data:`GPU_STEP_FLOOR_S`."""
    step_s = max(3 * forward_flops / (tflops * 1e12), GPU_STEP_FLOOR_S)
    return epochs * (-(-n_rows // batch_size) * step_s + -(-n_val // batch_size) * forward_flops / (tflops * 1e12))


def stage1_training(dim: int, kinds, gpus: dict[str, float]) -> list[tuple[str, int, float, dict[str, float]]]:
    """(kind, forward FLOPs of one stage-1 step, seconds of one step measured on this CPU, {gpu: minutes}) of the
    paper's stage 1 over Karpathy train + restval (its batch, epochs and validation on Karpathy val), counted and
    timed on a real batch of unit vectors. The GPU minutes count matrix products only: a lower bound where
    element-wise work weighs (``paper-attention``'s softmax over every pair's three tokens)."""
    import torch

    from fgclip_utils.heads.architectures import build_head
    from fgclip_utils.heads.losses import warmup_hinge
    from fgclip_utils.profiles import PaperRecipe

    stage = PaperRecipe().warmup
    g = torch.Generator().manual_seed(0)
    image, text = (torch.nn.functional.normalize(torch.randn(stage.batch_size, dim, generator=g), dim=-1)
                   for _ in range(2))
    rows = []
    for kind in kinds:
        head = build_head(kind, dim, seed=0)

        def loss(idx, h=head):
            return warmup_hinge(h.similarity_matrix(image[idx], text[idx]), stage.margin)

        forward = step_flops(head, loss, stage.batch_size)
        minutes = {gpu: training_seconds(forward, KARPATHY_CAPTIONS, stage.batch_size, stage.epochs,
                                         tflops * GPU_EFFICIENCY, n_val=25_000) / 60
                   for gpu, tflops in gpus.items()}
        rows.append((kind, forward, step_seconds(head, loss, stage.batch_size), minutes))
    return rows


def detector_minutes(annotations: int, gpus: dict[str, float], efficiency: float = 0.5, flops_of=None
                     ) -> list[tuple[str, float, dict[str, float]]]:
    """(detector, GFLOP per inference, {gpu: minutes}) of notebook 01's detectors in ``full`` over ``annotations``
    (one joint inference each, fp32 at ``efficiency`` of the peak), their FLOPs counted by ``flops_of(name)``,
    by default ``benchmarks/bench_detectors.py``'s on random-init models of the real sizes."""
    from fgclip_utils.profiles import get_profile

    if flops_of is None:
        import importlib.util
        from pathlib import Path

        spec = importlib.util.spec_from_file_location("bench_detectors",
                                                      Path(__file__).with_name("bench_detectors.py"))
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        flops_of = bench.inference_flops
    rows = []
    for name in get_profile("full").detectors:
        flops = flops_of(name)
        minutes = {g: annotations * flops / (tflops * efficiency * 1e12) / 60 for g, tflops in gpus.items()}
        rows.append((name, flops / 1e9, minutes))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-16")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--fgovd-images", type=int, default=6000,
                    help="images the 8 test splits reference (default: the bound the split files' 'under 1 GB' "
                         "gives at 160 KB an image); crops are taken as 3 per image")
    ap.add_argument("--local-gb", type=float, default=100.0, help="free space on the runtime's disk")
    ap.add_argument("--drive-gb", type=float, default=15.0, help="free space on Google Drive")
    ap.add_argument("--images-on-drive", action="store_true", help="the notebooks' images_on_drive setting")
    ap.add_argument("--warmup-start", default="train", choices=["train", "released"])
    ap.add_argument("--detectors", action="store_true",
                    help="add notebook 01's four detectors, one inference per annotation (3 per image), fp32 at 50%% "
                         "of peak (builds each at its real size to count its FLOPs: minutes, a few GB of memory)")
    ap.add_argument("--heads", nargs="*", default=list(PAPER_KINDS), choices=PAPER_KINDS,
                    help="notebook 02's paper_kinds (default: all five)")
    args = ap.parse_args(argv)
    import fgclip_utils as fg

    bundle = fg.load_clip(args.model, None, device="cpu")
    flops = forward_flops(bundle)
    image_flops, text_flops = flops["image"], flops["text_trimmed"]
    gpus = {"T4": GPU_PEAK_TFLOPS["T4"]["fp16"], "L4": GPU_PEAK_TFLOPS["L4"]["fp16"],
            "A100": GPU_PEAK_TFLOPS["A100"]["fp16"]}
    print(f"{args.model}: {image_flops / 1e9:.1f} GFLOP per crop, {text_flops / 1e9:.2f} GFLOP per caption; "
          f"{GPU_EFFICIENCY:.0%} of fp16 peak; decode {DECODE_IMAGES_PER_S:.0f} images/s x {args.workers} worker(s)")
    print("| step | notebook | images (GB, runtime disk) | " + " | ".join(f"{g} min" for g in gpus) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in gpus) + " |")
    for name, notebook, images, crops, captions in steps(args.fgovd_images, args.warmup_start, args.heads):
        decode = images / (DECODE_IMAGES_PER_S * args.workers)
        cells = []
        for peak in gpus.values():
            model = (crops * image_flops + captions * text_flops) / (peak * GPU_EFFICIENCY * 1e12)
            cells.append(f"{max(decode, model) / 60:.1f}" + (" (decode)" if decode >= model else " (model)"))
        gb = images * COCO_MEAN_IMAGE_BYTES / 1e9
        print(f"| {name} | {notebook} | {images:,} ({gb:.1f}) | " + " | ".join(cells) + " |")
    if args.detectors:
        fp32 = {g: GPU_PEAK_TFLOPS[g]["fp32"] for g in gpus}
        for name, gflop, minutes in detector_minutes(3 * args.fgovd_images, fp32):
            print(f"| detector {name}: {gflop:,.0f} GFLOP x {3 * args.fgovd_images:,} annotations | 01 | - | "
                  + " | ".join(f"{minutes[g]:,.0f}" for g in gpus) + " |")
    trained = stage1_kinds(args.warmup_start, args.heads)
    if trained:
        fp32 = {g: GPU_PEAK_TFLOPS[g]["fp32"] for g in gpus}
        print(f"| paper heads' stage 1 ({KARPATHY_CAPTIONS:,} pairs, 10 epochs, fp32 at {GPU_EFFICIENCY:.0%} of "
              "peak) | 02 | - | " + " | ".join("" for _ in gpus) + " |")
        for kind, forward, cpu_s, minutes in stage1_training(int(bundle.embed_dim), trained, fp32):
            print(f"| {kind}: {3 * forward / 1e9:,.2f} GFLOP a step ({cpu_s * 1e3:,.0f} ms on this CPU) | 02 | - | "
                  + " | ".join(f"{minutes[g]:,.1f}" for g in gpus) + " |")
    plan = storage(args.fgovd_images, int(bundle.embed_dim), warmup_start=args.warmup_start, kinds=args.heads,
                   images_on_drive=args.images_on_drive, local_gb=args.local_gb, drive_gb=args.drive_gb)
    print(f"runtime disk: {plan['local_gb']:.1f} of {args.local_gb:.0f} GB free; Drive: {plan['drive_gb']:.1f} of "
          f"{args.drive_gb:.0f} GB free (embeddings {plan['embeddings_gb']:.1f} GB, weights {WEIGHTS_GB} GB"
          + (f", images {plan['images_gb']:.1f} GB" if args.images_on_drive else "") + "): "
          + ("fits" if plan["fits"] else f"does NOT fit: {plan['advice']}"))
    return 0 if plan["fits"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
