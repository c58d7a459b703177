"""What notebook 01's detector section costs.

1. FLOPs of one joint inference (image + an 11-caption vocabulary) of each detector architecture the study runs,
   counted with ``torch.utils.flop_counter`` on a random-init model of the real size (``transformers`` configs
   of OWL-ViT B/16 768 px, L/14 840 px, OWLv2 B/16 960 px, L/14 1008 px; no weights are downloaded), and the time
   that takes on a T4 at its fp32 datasheet peak (8.1 TFLOP/s; the authors' scripts run fp32) at a stated
   efficiency: an estimate, not a measurement.
2. The whole detector path (inference, cache, rank protocol) measured on this machine with the tiny random-init
   detectors of the smoke profile on the synthetic benchmark.

    .venv/bin/python benchmarks/bench_detectors.py [--skip-flops] [--efficiency 0.5]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

T4_FP32_TFLOPS = 8.1
# (family, vision width, layers, heads, mlp, patch, image size; text width, layers, heads, mlp; projection)
ARCHITECTURES = {
    "owlvit-b16": ("owlvit", 768, 12, 12, 3072, 16, 768, 512, 12, 8, 2048, 512),
    "owlvit-l14": ("owlvit", 1024, 24, 16, 4096, 14, 840, 768, 12, 12, 3072, 768),
    "owlv2-b16": ("owlv2", 768, 12, 12, 3072, 16, 960, 512, 12, 8, 2048, 512),
    "owlv2-l14": ("owlv2", 1024, 24, 16, 4096, 14, 1008, 768, 12, 12, 3072, 768),
}


def inference_flops(name: str, vocabulary: int = 11, tokens: int = 16) -> int:
    import transformers as tf

    fam, vw, vl, vh, vm, patch, size, tw, tl, th, tm, proj = ARCHITECTURES[name]
    config_cls, model_cls = ((tf.OwlViTConfig, tf.OwlViTForObjectDetection) if fam == "owlvit"
                             else (tf.Owlv2Config, tf.Owlv2ForObjectDetection))
    config = config_cls(vision_config=dict(hidden_size=vw, num_hidden_layers=vl, num_attention_heads=vh,
                                           intermediate_size=vm, patch_size=patch, image_size=size),
                        text_config=dict(hidden_size=tw, num_hidden_layers=tl, num_attention_heads=th,
                                         intermediate_size=tm, max_position_embeddings=16),
                        projection_dim=proj)
    model = model_cls(config).eval()
    ids = torch.randint(0, 49000, (vocabulary, tokens))
    pixels = torch.randn(1, 3, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels)
    return counter.get_total_flops()


def tiny_path(n_objects: int = 240) -> dict:
    os.environ.setdefault("FGCLIP_CACHE", tempfile.mkdtemp(prefix="fgclip-bench-"))
    import fgclip_utils as fg

    P = fg.get_profile("smoke")
    bench = fg.load_benchmark(P, "test")
    start = time.perf_counter()
    table = fg.evaluate_detectors(P.detectors, bench, P.paper_n, device="cpu", progress=False)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    fg.evaluate_detectors(P.detectors, bench, P.paper_n, device="cpu", progress=False)
    warm = time.perf_counter() - start
    inferences = int(table["n_kept"].sum())
    return {"inferences": inferences, "cold_s": cold, "ms_per_inference": 1000 * cold / inferences,
            "cached_s": warm, "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-flops", action="store_true")
    ap.add_argument("--efficiency", type=float, default=0.5, help="share of the T4's fp32 peak assumed")
    args = ap.parse_args(argv)
    if not args.skip_flops:
        print("detector     GFLOP/inference  est. T4 s/inference (fp32, at "
              f"{args.efficiency:.0%} of {T4_FP32_TFLOPS} TFLOP/s)")
        for name in ARCHITECTURES:
            flops = inference_flops(name)
            print(f"{name:12s} {flops / 1e9:15.0f}  {flops / (T4_FP32_TFLOPS * 1e12 * args.efficiency):.2f}")
    tiny = tiny_path()
    print(f"tiny detectors (smoke, CPU, {tiny['threads']} threads): {tiny['inferences']} inferences in "
          f"{tiny['cold_s']:.1f} s ({tiny['ms_per_inference']:.1f} ms each, image decode and rank included); "
          f"from the cache: {tiny['cached_s']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
