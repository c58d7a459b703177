"""What a bootstrap interval costs at the full benchmark's size: ``fg.bootstrap_ci`` and ``fg.paired_bootstrap``
over N values (default 30,000, the order of FG-OVD's largest split), 1,000 resamples, on this CPU; then the
intervals of one Table B row: the FG-OVD Mean Rank over eight splits of N each (stratified), the same paired
against vanilla, and twelve COCO recalls over 25,000 caption / 5,000 image queries (0/1 hits).

    .venv/bin/python benchmarks/bench_bootstrap.py [--n 30000] [--n-boot 1000]
"""
from __future__ import annotations

import argparse
import time

import torch

import fgclip_utils as fg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args(argv)
    ranks = torch.randint(1, 12, (args.n,), generator=torch.Generator().manual_seed(0)).double()
    start = time.perf_counter()
    low, high = fg.bootstrap_ci(ranks, n_boot=args.n_boot)
    one = time.perf_counter() - start
    start = time.perf_counter()
    fg.paired_bootstrap(ranks, ranks.flip(0), n_boot=args.n_boot)
    paired = time.perf_counter() - start
    print(f"n={args.n}, {args.n_boot} resamples, {torch.get_num_threads()} threads: bootstrap_ci {one:.2f} s "
          f"(interval {low:.3f}-{high:.3f}), paired_bootstrap {paired:.2f} s")
    g = torch.Generator().manual_seed(1)
    splits = {s: torch.randint(1, 12, (args.n,), generator=g).double() for s in fg.PAPER_N}
    other = {s: v.flip(0) for s, v in splits.items()}
    hits = [(torch.rand(n, generator=g) < 0.4).double() for n in (5000, 25000) for _ in range(6)]
    start = time.perf_counter()
    fg.bootstrap_ci(splits, n_boot=args.n_boot)
    fg.paired_bootstrap(splits, other, n_boot=args.n_boot)
    for h in hits:
        fg.bootstrap_ci(h, n_boot=args.n_boot)
    row = time.perf_counter() - start
    print(f"one Table B row (8 splits x {args.n} annotations, stratified and paired; 12 recalls): {row:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
