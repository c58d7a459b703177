"""Peak host memory of the largest in-memory steps of a ``full`` run, at full scale, against Colab's 12.7 GB RAM.

Each step runs in a fresh process on synthetic unit vectors of the real sizes (ViT-B/16's 512 dimensions), through
the library's own code, and reports its peak resident memory (VmHWM) and what it added to the process it started
in (torch and the package imported):

- ``stage1``: the paper's stage 1 (``paper-linear``, one epoch of :func:`~fgclip_utils.heads.paper_recipe.train_stage`
  on the CPU) over COCO Karpathy train + restval (113,287 images, 566,435 captions), validated on Karpathy val
  (5,000 images, 25,000 captions): every caption embedding in memory at once, as notebook 02 holds them;
- ``retrieval``: the COCO Karpathy test recalls (5,000 x 25,000), both the standard ones and the authors' code's,
  with their bootstrap intervals.

The training loop's memory does not grow with the epochs, so one epoch measures it. ``--scale`` shrinks every size
(the suite runs it at 0.01). Linux only (reads /proc/self/status).

    python benchmarks/bench_colab_memory.py [--scale 1.0] [--dim 512]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

COLAB_RAM_GB = 12.7
KARPATHY_TRAIN = (113_287, 566_435)  # images, captions (STUDY.md 7.4)
KARPATHY_EVAL = (5_000, 25_000)  # val and test each


def vm(field: str) -> float:
    """A /proc/self/status memory field, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def caption_embeddings(images: int, captions_per_image: int, dim: int, seed: int):
    """Unit image and caption embeddings of a caption set with ``captions_per_image`` captions per image."""
    import torch

    from fgclip_utils.data.coco_captions import CaptionSet
    from fgclip_utils.extraction.embedding_cache import CaptionEmbeddings

    g = torch.Generator().manual_seed(seed)

    def unit(n: int) -> torch.Tensor:  # filled in blocks, so that making them adds nothing to the peak
        out = torch.empty(n, dim)
        for s in range(0, n, 65_536):
            out[s:s + 65_536] = torch.nn.functional.normalize(torch.randn(len(out[s:s + 65_536]), dim, generator=g),
                                                              dim=-1)
        return out

    n_captions = images * captions_per_image
    cs = CaptionSet(f"synthetic-{images}", [{"file_name": f"{i}.jpg"} for i in range(images)],
                    [f"caption {j}" for j in range(n_captions)],
                    torch.arange(images).repeat_interleave(captions_per_image))
    return CaptionEmbeddings(unit(images), unit(n_captions), cs, torch.ones(images), torch.ones(n_captions))


def measure(step: str, scale: float, dim: int) -> dict:
    """One step, in this (fresh) process."""
    from fgclip_utils.evaluation.retrieval import authors_coco_recalls, retrieval_recalls
    from fgclip_utils.heads.architectures import build_head
    from fgclip_utils.heads.paper_recipe import PairData, train_stage
    from fgclip_utils.profiles import PaperRecipe

    images, captions = KARPATHY_TRAIN if step == "stage1" else KARPATHY_EVAL
    images = max(2, round(images * scale))
    per_image = captions // KARPATHY_TRAIN[0] if step == "stage1" else captions // KARPATHY_EVAL[0]
    base = vm("VmRSS")
    emb = caption_embeddings(images, per_image, dim, seed=0)
    if step == "stage1":
        val = caption_embeddings(max(2, round(KARPATHY_EVAL[0] * scale)), 5, dim, seed=1)
        stage = PaperRecipe().warmup
        stage = type(stage)(**{**stage.__dict__, "epochs": 1})
        with tempfile.TemporaryDirectory(prefix="fgclip-mem-") as folder:
            train_stage(build_head("paper-linear", dim, seed=0), PairData.from_captions(emb),
                        PairData.from_captions(val), stage, Path(folder) / "head.pt", "memory", device="cpu",
                        progress=False)
    else:
        retrieval_recalls(emb)
        authors_coco_recalls(emb)
    return {"step": step, "images": images, "captions": len(emb.text), "baseline_mib": base,
            "peak_mib": vm("VmHWM"), "added_mib": vm("VmHWM") - base,
            "embeddings_mib": (emb.image.numel() + emb.text.numel()) * 4 / 2 ** 20}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of every real size (default: full scale)")
    ap.add_argument("--dim", type=int, default=512, help="embedding width (ViT-B/16: 512)")
    ap.add_argument("--steps", nargs="+", default=["stage1", "retrieval"], choices=["stage1", "retrieval"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.scale, args.dim)))
        return []
    rows = []
    for step in args.steps:
        out = subprocess.run([sys.executable, __file__, "--child", step, "--scale", str(args.scale), "--dim",
                              str(args.dim)], capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        print(f"{step}: {row['images']:,} images, {row['captions']:,} captions ({row['embeddings_mib']:,.0f} MiB of "
              f"embeddings): peak {row['peak_mib'] / 1024:.2f} GiB, {row['added_mib'] / 1024:.2f} GiB above the "
              f"{row['baseline_mib']:,.0f} MiB process it started in; Colab has {COLAB_RAM_GB} GB")
    return rows


if __name__ == "__main__":
    main()
