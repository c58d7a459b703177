"""Peak host memory of extracting one split, for growing numbers of crops: it must not grow with them.

For each size, a synthetic benchmark of that many objects is rendered (once; ``--bench-dir`` keeps them for
the next run), then a fresh process parses its Hard split, loads the model, records its resident memory,
runs :func:`fgclip_utils.embed_splits` into an empty cache and reports the peak (VmHWM) and how
much the extraction added to it, next to what holding every preprocessed crop at once would take. Linux only
(reads /proc/self/status).

    python benchmarks/bench_extract_memory.py --sizes 2000 20000
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fgclip_utils.extraction.clip_models import TINY_MODEL


def vm(field: str) -> float:
    """A /proc/self/status memory field, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(args) -> dict:
    """One size, in this (fresh) process."""
    import torch

    from fgclip_utils.data.benchmark_data import Benchmark
    from fgclip_utils.data.fgovd import load_split
    from fgclip_utils.data.synthetic import image_root, make_benchmark
    from fgclip_utils.extraction.clip_models import load_clip
    from fgclip_utils.extraction.embedding_cache import embed_splits
    from fgclip_utils.profiles import ExtractConfig

    bench = Path(args.bench)
    split = load_split(make_benchmark(bench, n_objects=args.objects, seed=0)["hard"], "hard")  # already there
    bundle = load_clip(args.model, device=args.device)
    base = vm("VmRSS")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fgclip-mem-") as cache:
        emb = embed_splits(bundle, Benchmark.of([split], image_root(bench)), cache_dir=cache, workers=args.workers,
                           extract=ExtractConfig(batch_size=args.batch_size), progress=False)["hard"]
    wall = time.perf_counter() - start
    height, width = bundle.image_size
    return {"crops": len(emb), "seconds": wall, "baseline_mib": base, "peak_mib": vm("VmHWM"),
            "worker_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "all_pixels_mib": len(emb) * 3 * height * width * 4 / 2 ** 20,
            "batch_mib": args.batch_size * 3 * height * width * 4 / 2 ** 20,
            "result_mib": (emb.image.numel() + emb.text.numel()) * 4 / 2 ** 20, "captions": len(emb.captions),
            "threads": torch.get_num_threads()}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="objects (= crops) per run")
    p.add_argument("--model", default=TINY_MODEL)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--bench-dir", type=Path, default=None,
                   help="keep the rendered benchmarks here (default: a temporary folder)")
    p.add_argument("--objects", type=int, help=argparse.SUPPRESS)  # set for the child process
    p.add_argument("--bench", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.objects is not None:
        print(json.dumps(measure(args)))
        return []
    from fgclip_utils.data.synthetic import make_benchmark

    rows = []
    with tempfile.TemporaryDirectory(prefix="fgclip-mem-") as tmp:
        for n in args.sizes:
            bench = (args.bench_dir or Path(tmp)) / f"synth-{n}"
            make_benchmark(bench, n_objects=n, seed=0)
            cmd = [sys.executable, __file__, "--objects", str(n), "--bench", str(bench), "--model", args.model,
                   "--device", args.device, "--batch-size", str(args.batch_size)]
            if args.workers is not None:
                cmd += ["--workers", str(args.workers)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"{r['crops']:6d} crops, {r['captions']:6d} distinct captions in {r['seconds']:6.1f} s: resident "
                  f"{r['baseline_mib']:7.1f} MiB before, peak {r['peak_mib']:7.1f} MiB "
                  f"(+{r['peak_mib'] - r['baseline_mib']:6.1f}); largest worker {r['worker_peak_mib']:6.1f} MiB; "
                  f"one batch of pixels {r['batch_mib']:.1f} MiB, the result {r['result_mib']:.1f} MiB, every "
                  f"preprocessed crop at once would be {r['all_pixels_mib']:.0f} MiB", flush=True)
    return rows


if __name__ == "__main__":
    main()
