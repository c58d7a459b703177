"""The plan of a ``full`` run on Colab before any of it runs: for each long step, what it reads (images, crops,
captions), where its files go (runtime disk or Drive) and the estimated minutes on a T4, an L4 and an A100,
from the study's cost model (``fgclip_utils/extraction/cost_estimate.py``: FLOPs counted on the backbone at
40% of the GPU's datasheet peak, decoding at 150 COCO-sized images/s per DataLoader worker; Colab's two vCPUs
give one worker). The model's FLOPs are counted on a random-init ViT-B/16 here (weights do not change them).
The rates are assumptions from the CPU build machine, not GPU measurements.

    .venv/bin/python benchmarks/colab_plan.py [--model ViT-B-16] [--workers 1] [--fgovd-images 6000]
"""
from __future__ import annotations

import argparse

from fgclip_utils.data.coco_images import COCO_MEAN_IMAGE_BYTES
from fgclip_utils.extraction.cost_estimate import DECODE_IMAGES_PER_S, GPU_EFFICIENCY, GPU_PEAK_TFLOPS, forward_flops

# (step, notebook, images decoded, crops or images encoded, captions encoded, where the images go)
KARPATHY_TRAIN, KARPATHY_CAPTIONS = 113_287, 566_435  # train + restval, 5 captions each (STUDY.md 7.4)


def steps(fgovd_images: int) -> list[tuple[str, str, int, int, int]]:
    return [
        ("FG-OVD test splits, 8 (crops, 11 captions each)", "01", fgovd_images, 3 * fgovd_images, 33 * fgovd_images),
        ("COCO Karpathy test + val (5,000 + 5,000 images, 5 captions each)", "02", 10_000, 10_000, 50_000),
        ("COCO Karpathy train + restval, stage 1 (skipped with warmup_start='released')", "02", KARPATHY_TRAIN,
         KARPATHY_TRAIN, KARPATHY_CAPTIONS),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-16")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--fgovd-images", type=int, default=6000,
                    help="images the 8 test splits reference (default: the bound the split files' 'under 1 GB' "
                         "gives at 160 KB an image); crops are taken as 3 per image")
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
    for name, notebook, images, crops, captions in steps(args.fgovd_images):
        decode = images / (DECODE_IMAGES_PER_S * args.workers)
        cells = []
        for peak in gpus.values():
            model = (crops * image_flops + captions * text_flops) / (peak * GPU_EFFICIENCY * 1e12)
            cells.append(f"{max(decode, model) / 60:.1f}" + (" (decode)" if decode >= model else " (model)"))
        gb = images * COCO_MEAN_IMAGE_BYTES / 1e9
        print(f"| {name} | {notebook} | {images:,} ({gb:.1f}) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
